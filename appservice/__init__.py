"""appservice: a toolkit for Matrix application services and bridges."""
