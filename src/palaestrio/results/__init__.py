"""A run's results for people: per-episode series (`series`, for `runs plot` and the web
page), tidy tables to take away (`export`) and the plots themselves (`plot`)."""
