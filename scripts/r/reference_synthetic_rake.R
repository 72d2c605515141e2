# Reference standard errors from R survey's raked design for the synthetic panel (issue 11).
#
# Regenerate, from the repository root (R >= 4.2 with survey and yaml;
# Debian: r-base-core r-cran-survey r-cran-yaml):
#   .venv/bin/panelbrain export synthetic --rows 100000 --seed 2011 --out /tmp/synthetic_100k.csv
#   Rscript scripts/r/reference_synthetic_rake.R /tmp/synthetic_100k.csv \
#     tests/fixtures/r/synthetic_100k_rake_svyby.csv
#
# Produced with R 4.2.2 Patched (2022-11-10 r83330), survey 4.1-1, yaml 2.3.7.
# Read by tests/functional/test_against_r.py (acceptance: estimates and SEs agree to 1e-6).
#
# The panel (every respondent weight 1 to start) is raked with survey::rake to the synthetic
# dictionary's targets (weighting.variables, in that order, each factor's levels in the
# dictionary's order), then svymean / svyby on the raked design, domains by subset(). rake()
# keeps the last pass's post-stratifications in the design, and svymean's variance
# (svyrecvar) replaces the influence values by their residuals on the raking margins: the
# calibration-aware linearisation panelbrain reproduces.
#
# Output: measure, by, filter, group, category, estimate, se (17 significant digits). by = ""
# is svymean of the (domain of the) whole panel; filter is column=value|value joined by ";"
# (every condition holds), "" for the whole panel; category is "" for the mean of a number.
suppressPackageStartupMessages({
  library(survey)
  library(yaml)
})
options(warn = 2) # any warning (e.g. "Raking did not converge") stops the script

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) %in% c(1, 2))
out <- if (length(args) == 2) args[2] else "tests/fixtures/r/synthetic_100k_rake_svyby.csv"
dictionary_path <- "src/panelbrain/data/datasets/synthetic/dictionary.yaml"
if (!file.exists(dictionary_path)) stop("run from the repository root: ", dictionary_path, " not found")

dictionary <- read_yaml(dictionary_path)
columns <- dictionary$tables[[1]]$columns
levels_of <- list()
for (column in columns) {
  if (identical(column$type, "categorical")) levels_of[[column$name]] <- sapply(column$values, function(v) as.character(v$value))
}
panel <- read.csv(args[1], stringsAsFactors = FALSE, check.names = FALSE, na.strings = character(0))
n <- nrow(panel)
stopifnot(n == 100000)
for (v in names(levels_of)) {
  stopifnot(all(panel[[v]] %in% levels_of[[v]]))
  panel[[v]] <- factor(panel[[v]], levels = levels_of[[v]])
}

sample_margins <- list()
population_margins <- list()
for (v in dictionary$weighting$variables) {
  shares <- unlist(v$targets)
  stopifnot(is.numeric(shares), abs(sum(shares) - 1) < 1e-12, setequal(names(shares), levels(panel[[v$column]])))
  sample_margins[[length(sample_margins) + 1]] <- as.formula(paste0("~", v$column))
  margin <- data.frame(names(shares), shares * n, row.names = NULL)
  names(margin) <- c(v$column, "Freq")
  population_margins[[length(population_margins) + 1]] <- margin
}
stopifnot(identical(sapply(sample_margins, all.vars), c("region", "gender", "age_group", "education", "urban")))

# epsilon below 1 is multiplied by the sum of the weights (n): 1e-15 stops only at the
# floating-point fixed point, so the last pass's weights (which svyrecvar uses) are the final ones.
panel$w0 <- 1
design <- svydesign(ids = ~1, weights = ~w0, data = panel)
raked <- rake(design, sample_margins, population_margins, control = list(maxit = 1000, epsilon = 1e-15))
w <- weights(raked)
worst <- 0
for (i in seq_along(sample_margins)) {
  variable <- all.vars(sample_margins[[i]])
  achieved <- tapply(w, panel[[variable]], sum) / n
  target <- setNames(population_margins[[i]]$Freq / n, population_margins[[i]][[variable]])
  worst <- max(worst, abs(achieved[names(target)] - target))
}
stopifnot(worst < 1e-12)

estimates <- list(
  list(measure = "vote_intention", by = "", filter = list()),
  list(measure = "vote_intention", by = "region", filter = list()),
  list(measure = "vote_intention", by = "age_group", filter = list()),
  list(measure = "satisfaction", by = "gender", filter = list(urban = "rural")),
  list(measure = "trusts_media", by = "education", filter = list(region = c("North", "South"))),
  list(measure = "income", by = "", filter = list()),
  list(measure = "income", by = "age_group", filter = list()),
  list(measure = "income", by = "", filter = list(gender = "Female")),
  list(measure = "hours_online", by = "urban", filter = list(age_group = c("18-24", "25-34")))
)
rows <- list()
for (e in estimates) {
  sub <- raked
  filter <- ""
  if (length(e$filter)) {
    conditions <- mapply(function(column, values) {
      stopifnot(all(values %in% levels(panel[[column]])))
      paste0(column, " %in% c(", paste0('"', values, '"', collapse = ", "), ")")
    }, names(e$filter), e$filter)
    sub <- eval(bquote(subset(raked, .(str2lang(paste(conditions, collapse = " & "))))))
    stopifnot(length(weights(sub)) == n) # rows outside the domain stay, with weight 0
    filter <- paste(mapply(function(column, values) paste0(column, "=", paste(values, collapse = "|")),
      names(e$filter), e$filter), collapse = ";")
  }
  f <- as.formula(paste0("~", e$measure))
  categorical <- is.factor(panel[[e$measure]])
  categories <- if (categorical) levels(panel[[e$measure]]) else ""
  names_r <- paste0(e$measure, if (categorical) categories else "")
  if (e$by == "") {
    est <- svymean(f, sub)
    groups <- list(list(group = "All", estimate = coef(est)[names_r], se = SE(est)[seq_along(names_r)]))
  } else {
    grouped <- as.data.frame(svyby(f, as.formula(paste0("~", e$by)), sub, svymean))
    se_names <- if (categorical) paste0("se.", names_r) else "se"
    groups <- lapply(seq_len(nrow(grouped)), function(i) list(
      group = as.character(grouped[i, e$by]),
      estimate = unlist(grouped[i, names_r]), se = unlist(grouped[i, se_names])
    ))
  }
  for (g in groups) {
    stopifnot(length(g$estimate) == length(categories), length(g$se) == length(categories))
    rows[[length(rows) + 1]] <- data.frame(
      measure = e$measure, by = e$by, filter = filter, group = g$group, category = categories,
      estimate = sprintf("%.17g", g$estimate), se = sprintf("%.17g", g$se)
    )
  }
}
result <- do.call(rbind, rows)
write.csv(result, out, row.names = FALSE)
cat(sprintf("wrote %d estimates to %s; largest share error %.3g\n", nrow(result), out, worst))
