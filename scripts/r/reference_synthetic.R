# Reference raking weights from R survey::calibrate(calfun = "raking") for the synthetic panel.
#
# Regenerate (R >= 4.2 with survey; Debian: r-base-core r-cran-survey):
#   .venv/bin/panelbrain export synthetic --rows 100000 --seed 2011 --out /tmp/synthetic_100k.csv
#   Rscript scripts/r/reference_synthetic.R /tmp/synthetic_100k.csv tests/fixtures/r/synthetic_100k_calibrate_raking.csv
#
# Produced with R 4.2.2 and survey 4.1-1. Every respondent of one cell (the same five weighting
# categories) gets the same weight, so the output lists the distinct cells: their categories,
# their respondent count n, and the R weight normalised to mean 1 over respondents.
suppressPackageStartupMessages(library(survey))

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2)
panel <- read.csv(args[1], stringsAsFactors = FALSE, check.names = FALSE)

# Targets and level order as in src/panelbrain/data/datasets/synthetic/dictionary.yaml.
targets <- list(
  region = c(North = 0.15, South = 0.25, East = 0.20, West = 0.22, Central = 0.18),
  gender = c(Female = 0.51, Male = 0.49),
  age_group = c("18-24" = 0.11, "25-34" = 0.17, "35-44" = 0.17, "45-54" = 0.18, "55-64" = 0.17, "65+" = 0.20),
  education = c(none = 0.12, secondary = 0.33, vocational = 0.25, bachelor = 0.20, postgraduate = 0.10),
  urban = c(urban = 0.80, rural = 0.20)
)
for (v in names(targets)) {
  stopifnot(all(panel[[v]] %in% names(targets[[v]])))
  panel[[v]] <- factor(panel[[v]], levels = names(targets[[v]]))
}
n <- nrow(panel)
panel$w0 <- 1
design <- svydesign(ids = ~1, weights = ~w0, data = panel)

formula <- ~region + gender + age_group + education + urban
# Population totals in model-matrix form: the intercept, then each non-reference level.
population <- c("(Intercept)" = n)
for (v in names(targets)) {
  shares <- targets[[v]]
  for (level in names(shares)[-1]) population[paste0(v, level)] <- shares[[level]] * n
}
stopifnot(identical(names(population), colnames(model.matrix(formula, panel))))

calibrated <- calibrate(design, formula, population = population, calfun = "raking",
                        epsilon = 1e-12, maxit = 1000)
w <- weights(calibrated)
w <- w / mean(w)

key <- interaction(panel[names(targets)], drop = TRUE, lex.order = TRUE)
spread <- tapply(w, key, function(x) max(x) - min(x))
stopifnot(max(spread) < 1e-12)
cells <- unique(data.frame(panel[names(targets)], key = key))
cells$n <- as.integer(table(key)[as.character(cells$key)])
cells$weight_r <- as.numeric(tapply(w, key, mean)[as.character(cells$key)])
cells$key <- NULL
cells <- cells[do.call(order, cells[names(targets)]), ]
stopifnot(sum(cells$n) == n)
cells$weight_r <- sprintf("%.17g", cells$weight_r)
write.csv(cells, args[2], row.names = FALSE, quote = FALSE)
cat(sprintf("wrote %d cells (%d respondents) to %s\n", nrow(cells), sum(cells$n), args[2]))
