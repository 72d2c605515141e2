# Reference raked weights and weighted shares by group for CES11 from R survey.
#
# Regenerate, from the repository root (R >= 4.2 with survey, carData and yaml;
# Debian: r-base-core r-cran-survey r-cran-cardata r-cran-yaml):
#   .venv/bin/panelbrain export ces11 --out /tmp/ces11.csv
#   Rscript scripts/r/reference_ces11.R /tmp/ces11.csv tests/fixtures/r
#
# Produced with R 4.2.2 Patched (2022-11-10 r83330), survey 4.1-1, carData 3.0-5, yaml 2.3.7.
# Read by tests/functional/test_against_r.py (acceptance: point estimates agree to 1e-9,
# standard errors to 1e-6).
#
# Mirrors panelbrain's default CES11 weighting (src/panelbrain/data/datasets/ces11/dictionary.yaml,
# read here for its targets and recode): start from the design weight `weight`, rake to province
# (share = province population / sum over the ten provinces, from the `population` column),
# gender, urban/rural, and education recoded to four census categories (lessHS; HS and somePS ->
# HS_or_somePS; college; bachelors and higher -> university). Then svymean / svyby on the raked
# design. The data is carData::CES11, checked here against panelbrain's export of its vendored copy.
#
# Outputs (in the directory given):
#   ces11_rake_weights.csv  id, weight: raked weight per respondent, normalised to mean 1
#   ces11_rake_svyby.csv    measure, by, group, category, estimate, se: svymean (by = "",
#                           group = "All") and svyby(~measure, ~by, design, svymean) for abortion
#                           by province, gender, urban, education (6 levels), importance, and
#                           importance by province, gender, urban, education
#   ces11_rake_domains.csv  measure, by, filter, group, category, estimate, se: the same on
#                           domains of the raked design, by subset() (issue 11)
# The se columns are R's raked-design standard errors (calibration-aware linearisation), which
# panelbrain's default SE reproduces to 1e-6.
suppressPackageStartupMessages({
  library(survey)
  library(carData)
  library(yaml)
})
options(warn = 2) # any warning (e.g. "Raking did not converge") stops the script

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) %in% c(1, 2))
out <- if (length(args) == 2) args[2] else "tests/fixtures/r"
dictionary_path <- "src/panelbrain/data/datasets/ces11/dictionary.yaml"
if (!file.exists(dictionary_path)) stop("run from the repository root: ", dictionary_path, " not found")

d <- carData::CES11
stopifnot(nrow(d) == 2231)

# The rows panelbrain vendors must be carData's, in the same order, value for value.
exported <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = character(0))
stopifnot(identical(names(exported), names(d)), nrow(exported) == nrow(d))
for (column in names(d)) {
  ours <- if (is.factor(d[[column]])) as.character(d[[column]]) else d[[column]]
  if (!identical(ours, exported[[column]])) stop("CES11 column ", column, " differs from panelbrain's export")
}

dictionary <- read_yaml(dictionary_path)
weighting <- dictionary$weighting
stopifnot(identical(weighting$base_weight, "weight"))
sample_margins <- list()
population_margins <- list()
for (v in weighting$variables) {
  column <- v$column
  if (!is.null(v$targets_from_column)) {
    # Province: each province's population (one value per province) over the ten provinces' sum.
    provinces <- unique(d[, c(column, v$targets_from_column)])
    stopifnot(!anyDuplicated(provinces[[column]]), nrow(provinces) == 10)
    shares <- setNames(provinces[[v$targets_from_column]] / sum(provinces[[v$targets_from_column]]),
                       as.character(provinces[[column]]))
  } else {
    shares <- unlist(v$targets)
  }
  stopifnot(abs(sum(shares) - 1) < 1e-12)
  variable <- column
  if (!is.null(v$recode)) {
    # Education: the census margins are coarser than the data; rake a recoded copy, keep the
    # original six levels for the svyby breakdowns.
    variable <- "edu4"
    recode <- unlist(v$recode)
    stopifnot(setequal(names(recode), levels(d[[column]])))
    d[[variable]] <- factor(recode[as.character(d[[column]])], levels = names(shares))
  }
  stopifnot(!anyNA(d[[variable]]), setequal(unique(as.character(d[[variable]])), names(shares)))
  sample_margins[[length(sample_margins) + 1]] <- as.formula(paste0("~", variable))
  margin <- data.frame(names(shares), shares, row.names = NULL)
  names(margin) <- c(variable, "Freq")
  population_margins[[length(population_margins) + 1]] <- margin
}
stopifnot(identical(sapply(sample_margins, all.vars), c("province", "gender", "urban", "edu4")))

# survey::rake's control$epsilon, when below 1, is multiplied by the sum of the design weights;
# raking stops when no cell of the joint province x gender x urban x edu4 weighted table moves
# by more than that over one pass. So the population totals go on the scale of the design
# weights (shares x sum of weights; the weights are normalised to mean 1 afterwards), and
# epsilon = 1e-15 stops only at the floating-point fixed point: every margin is checked below
# to 1e-13, far beyond the 1e-9 asked of the point estimates.
total <- sum(d$weight)
population_margins <- lapply(population_margins, function(m) {
  m$Freq <- m$Freq * total
  m
})

design <- svydesign(ids = ~1, weights = ~weight, data = d)
raked <- rake(design, sample_margins, population_margins, control = list(maxit = 1000, epsilon = 1e-15))

w <- weights(raked)
worst <- 0
for (i in seq_along(sample_margins)) {
  variable <- all.vars(sample_margins[[i]])
  achieved <- tapply(w, d[[variable]], sum) / sum(w)
  target <- setNames(population_margins[[i]]$Freq / total, population_margins[[i]][[variable]])
  worst <- max(worst, abs(achieved[names(target)] - target))
}
stopifnot(worst < 1e-13)

write.csv(data.frame(id = d$id, weight = sprintf("%.17g", w / mean(w))),
  file.path(out, "ces11_rake_weights.csv"),
  row.names = FALSE, quote = FALSE
)

rows <- list()
add <- function(measure, by, group, est, se) {
  category <- sub(paste0("^", measure), "", names(est))
  rows[[length(rows) + 1]] <<- data.frame(
    measure = measure, by = by, group = group,
    category = category,
    estimate = sprintf("%.17g", est),
    se = sprintf("%.17g", se)
  )
}
breakdowns <- list(
  abortion = c("province", "gender", "urban", "education", "importance"),
  importance = c("province", "gender", "urban", "education")
)
for (measure in names(breakdowns)) {
  f <- as.formula(paste0("~", measure))
  overall <- svymean(f, raked)
  add(measure, "", "All", coef(overall), SE(overall))
  for (by in breakdowns[[measure]]) {
    grouped <- as.data.frame(svyby(f, as.formula(paste0("~", by)), raked, svymean))
    columns <- paste0(measure, levels(d[[measure]]))
    stopifnot(all(c(columns, paste0("se.", columns)) %in% names(grouped)))
    for (i in seq_len(nrow(grouped))) {
      e <- unlist(grouped[i, columns])
      names(e) <- columns
      add(measure, by, as.character(grouped[i, by]), e, unlist(grouped[i, paste0("se.", columns)]))
    }
  }
}
result <- do.call(rbind, rows)
write.csv(result, file.path(out, "ces11_rake_svyby.csv"), row.names = FALSE)
cat(sprintf(
  "wrote %d estimates and %d weights to %s; largest margin error %.3g\n",
  nrow(result), nrow(d), out, worst
))

# Domains (issue 11): the same raked design restricted with subset(), as an analyst filters in R.
# A calibrated design keeps every respondent after subset() (those outside get weight 0), so
# the calibration residuals and the n/(n-1) factor still use the whole sample.
# Output: ces11_rake_domains.csv  measure, by, filter, group, category, estimate, se; filter is
# column=value|value joined by ";" (every condition holds), by = "" means svymean of the domain.
domains <- list(
  list(measure = "importance", by = "", filter = list(gender = "Female")),
  list(measure = "abortion", by = "province", filter = list(urban = "urban")),
  list(measure = "abortion", by = "", filter = list(province = c("ON", "QC"))),
  list(measure = "importance", by = "urban", filter = list(gender = "Male", education = c("bachelors", "higher"))),
  list(measure = "abortion", by = "education", filter = list(province = c("AB", "BC", "MB", "NB", "NL", "NS", "ON", "PE", "SK"))),
  list(measure = "importance", by = "gender", filter = list(province = "PE"))
)
rows <- list()
for (domain in domains) {
  conditions <- mapply(function(column, values) {
    stopifnot(all(values %in% levels(d[[column]])))
    paste0(column, " %in% c(", paste0('"', values, '"', collapse = ", "), ")")
  }, names(domain$filter), domain$filter)
  expression <- str2lang(paste(conditions, collapse = " & "))
  sub <- eval(bquote(subset(raked, .(expression))))
  stopifnot(length(weights(sub)) == nrow(d)) # rows outside the domain stay, with weight 0
  filter <- paste(mapply(function(column, values) paste0(column, "=", paste(values, collapse = "|")),
    names(domain$filter), domain$filter), collapse = ";")
  f <- as.formula(paste0("~", domain$measure))
  columns <- paste0(domain$measure, levels(d[[domain$measure]]))
  if (domain$by == "") {
    est <- svymean(f, sub)
    groups <- list(list(group = "All", estimate = coef(est), se = SE(est)))
  } else {
    grouped <- as.data.frame(svyby(f, as.formula(paste0("~", domain$by)), sub, svymean))
    groups <- lapply(seq_len(nrow(grouped)), function(i) list(
      group = as.character(grouped[i, domain$by]),
      estimate = unlist(grouped[i, columns]), se = unlist(grouped[i, paste0("se.", columns)])
    ))
  }
  for (g in groups) {
    rows[[length(rows) + 1]] <- data.frame(
      measure = domain$measure, by = domain$by, filter = filter, group = g$group,
      category = levels(d[[domain$measure]]),
      estimate = sprintf("%.17g", g$estimate), se = sprintf("%.17g", g$se)
    )
  }
}
result <- do.call(rbind, rows)
write.csv(result, file.path(out, "ces11_rake_domains.csv"), row.names = FALSE)
cat(sprintf("wrote %d domain estimates to %s\n", nrow(result), out))
