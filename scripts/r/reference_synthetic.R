# Reference raking weights from R survey::calibrate(calfun = "raking") for the synthetic panel.
#
# Regenerate, from the repository root (R >= 4.2 with survey and yaml;
# Debian: r-base-core r-cran-survey r-cran-yaml):
#   .venv/bin/panelbrain export synthetic --rows 100000 --seed 2011 --out /tmp/synthetic_100k.csv
#   Rscript scripts/r/reference_synthetic.R /tmp/synthetic_100k.csv \
#     tests/fixtures/r/synthetic_100k_calibrate_raking.csv
#
# Produced with R 4.2.2 Patched (2022-11-10 r83330), survey 4.1-1, yaml 2.3.7.
# Read by tests/functional/test_against_r.py (acceptance: weights agree to 1e-6, mean 1).
#
# The targets and their category order are read from the synthetic data dictionary
# (src/panelbrain/data/datasets/synthetic/dictionary.yaml, weighting.variables). Each factor's
# levels are set in that order, so the first category of each variable is R's reference level
# under treatment contrasts and the population totals are: N for the intercept, then
# target share x N for every other level, in model.matrix column order.
#
# Every respondent of one cell (the same five weighting categories) gets the same weight, so the
# output lists the distinct cells: their categories, their respondent count n, and the R weight
# normalised to mean 1 over respondents (17 significant digits).
suppressPackageStartupMessages({
  library(survey)
  library(yaml)
})
options(warn = 2) # any warning (e.g. calibrate's "Failed to converge") stops the script

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) %in% c(1, 2))
out <- if (length(args) == 2) args[2] else "tests/fixtures/r/synthetic_100k_calibrate_raking.csv"
dictionary_path <- "src/panelbrain/data/datasets/synthetic/dictionary.yaml"
if (!file.exists(dictionary_path)) stop("run from the repository root: ", dictionary_path, " not found")

dictionary <- read_yaml(dictionary_path)
targets <- list()
for (v in dictionary$weighting$variables) {
  shares <- unlist(v$targets)
  stopifnot(is.numeric(shares), abs(sum(shares) - 1) < 1e-12)
  targets[[v$column]] <- shares
}
stopifnot(identical(names(targets), c("region", "gender", "age_group", "education", "urban")))

panel <- read.csv(args[1], stringsAsFactors = FALSE, check.names = FALSE, na.strings = character(0))
n <- nrow(panel)
stopifnot(n == 100000)
for (v in names(targets)) {
  stopifnot(all(panel[[v]] %in% names(targets[[v]])))
  panel[[v]] <- factor(panel[[v]], levels = names(targets[[v]]))
}
panel$w0 <- 1
design <- svydesign(ids = ~1, weights = ~w0, data = panel)

formula <- ~ region + gender + age_group + education + urban
# Population totals in model-matrix form: the intercept, then each non-reference level.
population <- c("(Intercept)" = n)
for (v in names(targets)) {
  shares <- targets[[v]]
  for (level in names(shares)[-1]) population[paste0(v, level)] <- shares[[level]] * n
}
stopifnot(identical(names(population), colnames(model.matrix(formula, panel))))

# calibrate's epsilon bounds |achieved total - population total| / (1 + population total) for
# every total; Newton steps converge quadratically, so 1e-12 is reached in a few iterations.
calibrated <- calibrate(design, formula,
  population = population, calfun = "raking",
  epsilon = 1e-12, maxit = 1000
)
w <- weights(calibrated)

# Check the margins independently of calibrate's own test: every category's weighted share.
worst <- 0
for (v in names(targets)) {
  achieved <- tapply(w, panel[[v]], sum) / sum(w)
  worst <- max(worst, abs(achieved[names(targets[[v]])] - targets[[v]]))
}
stopifnot(worst < 1e-12)

w <- w / mean(w)
key <- interaction(panel[names(targets)], drop = TRUE, lex.order = TRUE)
spread <- tapply(w, key, function(x) max(x) - min(x))
stopifnot(max(spread) == 0) # calibrate's g-weights are a function of the model-matrix row
cells <- unique(data.frame(panel[names(targets)], key = key))
cells$n <- as.integer(table(key)[as.character(cells$key)])
cells$weight_r <- as.numeric(tapply(w, key, mean)[as.character(cells$key)])
cells$key <- NULL
cells <- cells[do.call(order, cells[names(targets)]), ]
stopifnot(sum(cells$n) == n)
cells$weight_r <- sprintf("%.17g", cells$weight_r)
write.csv(cells, out, row.names = FALSE, quote = FALSE)
cat(sprintf(
  "wrote %d cells (%d respondents) to %s; largest share error %.3g; weights %.6g..%.6g\n",
  nrow(cells), sum(cells$n), out, worst, min(w), max(w)
))
