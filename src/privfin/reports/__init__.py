"""Job reports: the self-contained HTML report (:mod:`privfin.reports.html`)."""

from privfin.reports.html import (
                                  Html,
                                  JobSummary,
                                  ReportData,
                                  build_report,
                                  evaluation_section,
                                  ledger_summary,
                                  report_from_store,
                                  write_job_report,
                                  write_report,
)

__all__ = ["Html", "JobSummary", "ReportData", "build_report", "evaluation_section", "ledger_summary",
           "report_from_store", "write_job_report", "write_report"]
