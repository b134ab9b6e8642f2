"""Matrix <-> IRC bridge groundwork: formatting, line splits, nicks, an ngIRCd test harness."""
