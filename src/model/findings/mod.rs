//! Findings of review and analyze runs, from the model's answer to anchored diagnostics.
//!
//! * [`schema`]: the JSON schema the CLI is asked to fill (`--json-schema`). Checked on the pinned
//!   CLIs (2.1.197 and 2.1.330): it offers the model a `StructuredOutput` tool whose
//!   `input_schema` is this schema, validates each call against it (5 failed calls end the run
//!   with `error_max_structured_output_retries`), and puts the accepted input in
//!   `result.structured_output`. A model that answers in plain text instead ends the run with no
//!   structured output at all.
//! * [`read_report`]: the answer as a [`Report`]: the structured output, else the last fenced
//!   `json` block of the text, else the plain text with a note saying why there are no findings.
//! * [`place`]: each finding located in its file. The code it quotes (`fix.oldText`, else
//!   `snippet`) decides where it goes and the line numbers only choose between occurrences, so
//!   line numbers that are off by a few are corrected. A finding that cannot be located is
//!   listed for the summary, never placed at a guess.
//! * [`FindingStore`]: placed findings per file, anchored while the user edits: an edit before a
//!   finding moves it, an edit touching it removes it.
//! * [`to_diagnostic`]: a finding as the editor shows it.

mod answer;
mod finding;
mod place;
mod report;
mod store;
#[cfg(test)]
mod tests;

pub use answer::{markdown_answer, plain_answer, summary_text};
pub use finding::{
    Category, Finding, FindingFix, FixError, RelatedLocation, SOURCE, finding_id, fix_edit,
    to_diagnostic,
};
pub use place::{FileText, PlaceOptions, Placement, Splice, place, splices_between};
pub use report::{
    MalformedReport, Report, ReportSource, ReportedFinding, ReportedFix, ReportedRelated,
    analysis_limits, read_report, schema,
};
pub use store::{FindingStore, Publication, Reviewed};
