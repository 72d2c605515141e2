# CES11 as fieldwork delivers a survey: an SPSS .sav and a Stata .dta with numeric codes, value
# labels and variable labels, for the `panelbrain datasets add` acceptance tests.
#
# Run by hand, from the repository root (CI only reads the committed outputs). Needs R with
# haven and yaml; on Debian, as root: `apt-get install -y r-cran-haven r-cran-yaml`.
#   Rscript scripts/r/write_ces11_labelled.R [OUT_DIR]
# OUT_DIR defaults to tests/fixtures/datasets. Produced with R 4.2.2, haven 2.5.1, yaml 2.3.7.
#
# Reads the vendored data (src/panelbrain/data/datasets/ces11/ces11.csv) and its dictionary
# (dictionary.yaml beside it). Every categorical column becomes codes 1..k in the dictionary's
# order of values, labelled with the dictionary's value labels ("Alberta", "Women", "Support a
# ban"), and every column carries the dictionary's label as its variable label. So a question
# worded with the value labels must give the built-in dataset's answers once the file is added.
#
# One code no respondent has is declared user-missing in the .sav, as fieldwork files do:
# abortion 8 "Don't know". `datasets add` must read it as missing, never as an answer.
#
# Outputs: ces11.sav (haven::write_sav), ces11.dta (haven::write_dta, Stata 15 format).
suppressPackageStartupMessages({
  library(haven)
  library(yaml)
})
options(warn = 2)

args <- commandArgs(trailingOnly = TRUE)
out <- if (length(args) >= 1) args[1] else "tests/fixtures/datasets"
folder <- "src/panelbrain/data/datasets/ces11"
if (!dir.exists(folder)) stop("run from the repository root: ", folder, " not found")
dictionary <- yaml::read_yaml(file.path(folder, "dictionary.yaml"))
table <- dictionary$tables[[1]]
data <- read.csv(file.path(folder, table$file), stringsAsFactors = FALSE)
stopifnot(nrow(data) == 2231)

labelled_columns <- function(missing_codes) {
  columns <- list()
  for (column in table$columns) {
    values <- data[[column$name]]
    if (column$type == "categorical") {
      codes <- seq_along(column$values)
      names(codes) <- vapply(column$values, function(v) v$label, "")
      raw <- vapply(column$values, function(v) as.character(v$value), "")
      coded <- as.numeric(match(as.character(values), raw))
      if (anyNA(coded)) stop(column$name, ": a value is not in the dictionary")
      extra <- missing_codes[[column$name]]
      if (is.null(extra)) {
        columns[[column$name]] <- labelled(coded, labels = codes, label = column$label)
      } else {
        columns[[column$name]] <- labelled_spss(
          coded, labels = c(codes, extra), na_values = unname(extra), label = column$label
        )
      }
    } else {
      columns[[column$name]] <- values
      attr(columns[[column$name]], "label") <- column$label
    }
  }
  as.data.frame(columns, stringsAsFactors = FALSE)
}

dir.create(out, showWarnings = FALSE, recursive = TRUE)
write_sav(labelled_columns(list(abortion = c("Don't know" = 8))), file.path(out, "ces11.sav"))
write_dta(labelled_columns(list()), file.path(out, "ces11.dta"), version = 15, label = dictionary$title)
cat("wrote", file.path(out, "ces11.sav"), "and", file.path(out, "ces11.dta"), "\n")
