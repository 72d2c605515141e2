# Reference raked weights and weighted shares by group for CES11 from R survey.
#
# Regenerate (R >= 4.2 with survey and carData; Debian: r-base-core r-cran-survey r-cran-cardata):
#   Rscript scripts/r/reference_ces11.R tests/fixtures/r
#
# Produced with R 4.2.2, survey 4.1-1, carData 3.0-5. Mirrors panelbrain's default CES11
# weighting (src/panelbrain/data/datasets/ces11/dictionary.yaml): start from the design weight,
# rake to province (population column), gender, urban/rural and education recoded to four
# census categories; then svymean / svyby point estimates.
suppressPackageStartupMessages({
  library(survey)
  library(carData)
})

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 1)
out <- args[1]

d <- carData::CES11
stopifnot(nrow(d) == 2231)
d$edu4 <- factor(
  c(lessHS = "lessHS", HS = "HS_or_somePS", somePS = "HS_or_somePS", college = "college",
    bachelors = "university", higher = "university")[as.character(d$education)],
  levels = c("lessHS", "HS_or_somePS", "college", "university")
)

provinces <- unique(d[, c("province", "population")])
province_share <- provinces$population / sum(provinces$population)
margins <- list(
  data.frame(province = provinces$province, Freq = province_share),
  data.frame(gender = c("Female", "Male"), Freq = c(0.514049, 0.485951)),
  data.frame(urban = c("urban", "rural"), Freq = c(0.811, 0.189)),
  data.frame(edu4 = c("lessHS", "HS_or_somePS", "college", "university"),
             Freq = c(0.201229, 0.255651, 0.334593, 0.208527))
)
# Totals on the scale of the design weights, so rake's epsilon is relative to them.
total <- sum(d$weight)
margins <- lapply(margins, function(m) { m$Freq <- m$Freq * total; m })

design <- svydesign(ids = ~1, weights = ~weight, data = d)
raked <- rake(design, list(~province, ~gender, ~urban, ~edu4), margins,
              control = list(maxit = 1000, epsilon = 1e-15))

w <- weights(raked)
write.csv(data.frame(id = d$id, weight = sprintf("%.17g", w / mean(w))),
          file.path(out, "ces11_rake_weights.csv"), row.names = FALSE, quote = FALSE)

rows <- list()
add <- function(measure, by, group, est, se) {
  category <- sub(paste0("^", measure), "", names(est))
  rows[[length(rows) + 1]] <<- data.frame(measure = measure, by = by, group = group,
                                           category = category,
                                           estimate = sprintf("%.17g", est),
                                           se = sprintf("%.17g", se))
}
for (measure in c("abortion", "importance")) {
  f <- as.formula(paste0("~", measure))
  overall <- svymean(f, raked)
  add(measure, "", "All", coef(overall), SE(overall))
  for (by in c("province", "gender", "urban", "education", "importance")) {
    if (by == measure) next
    grouped <- as.data.frame(svyby(f, as.formula(paste0("~", by)), raked, svymean))
    columns <- grep(paste0("^", measure), names(grouped), value = TRUE)
    for (i in seq_len(nrow(grouped))) {
      e <- unlist(grouped[i, columns]); names(e) <- columns
      add(measure, by, as.character(grouped[i, by]), e, unlist(grouped[i, paste0("se.", columns)]))
    }
  }
}
result <- do.call(rbind, rows)
write.csv(result, file.path(out, "ces11_rake_svyby.csv"), row.names = FALSE)
cat(sprintf("wrote %d estimates and %d weights to %s\n", nrow(result), nrow(d), out))
