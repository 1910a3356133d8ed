//! The HTML part of the emails administrators read, beside their complete
//! plain text: a verdict line, the counts as tiles, the trend picture, and
//! "what to fix" as a table of the first problems.
//!
//! Built with maud, which escapes every value it is given: nothing a district
//! sent (names, usernames, values, file names, column names) can become
//! markup. No external resources (the picture is a `cid:` part of the same
//! message, styles are inline), readable at 600 pixels wide, and the problem
//! table stops at [`TABLE_BYTES`] so a message stays small whatever the file.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart;
use crate::domain::report::{Counts, Problem, Severity, thousands};
use crate::domain::trend::Trend;

/// The `Content-ID` of the trend picture, which the page names as `cid:`.
pub const TREND_CID: &str = "trend.png@rosterd";

/// The most bytes of HTML the problem table may take; rows beyond it are
/// left to the attachment (the plain text lists them all the same).
pub const TABLE_BYTES: usize = 96 * 1024;

/// What an email says happened, as its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    AppliedWithErrors,
    Held,
    Rejected,
    Unchanged,
    NothingReceived,
    Undone,
}

impl Verdict {
    /// The verdict's words and its colours (text, background).
    fn look(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Applied => ("Applied", "#2b6e3f", "#ebfbee"),
            Self::AppliedWithErrors => ("Applied with errors", "#8a4b00", "#fff4e0"),
            Self::Held => ("Held for approval", "#1c4f8a", "#e7f1fc"),
            Self::Rejected => ("Rejected", "#a61e1e", "#fff0f0"),
            Self::Unchanged => ("Unchanged", "#3d4852", "#f1f3f5"),
            Self::NothingReceived => ("Nothing received", "#3d4852", "#f1f3f5"),
            Self::Undone => ("Undone", "#3d4852", "#f1f3f5"),
        }
    }
}

/// The problems an email lists, and where the rest are.
pub struct Problems<'a> {
    /// At most as many as the plain text lists.
    pub shown: &'a [Problem],
    /// Errors and warnings counted in all.
    pub total: u64,
    /// Where the ones not shown are ("the attached errors.csv lists every problem").
    pub rest: &'a str,
}

/// One email's page.
pub struct Page<'a> {
    /// The subject, as the page's title.
    pub title: &'a str,
    pub verdict: Verdict,
    /// What the verdict means tonight ("12 rows skipped; every other row was applied").
    pub verdict_detail: String,
    pub dry_run: bool,
    pub admin_name: &'a str,
    /// The opening sentence, as the plain text has it.
    pub intro: &'a str,
    /// Label and value lines: received, imported, file, sha256.
    pub facts: Vec<(&'static str, String)>,
    /// Why it was rejected or held.
    pub reason: Option<&'a str>,
    pub counts: Option<&'a Counts>,
    /// The picture and what it shows; the picture itself is the message's
    /// [`TREND_CID`] part.
    pub trend: Option<&'a Trend>,
    pub problems: Option<Problems<'a>>,
    /// The closing paragraphs: what to do, what is attached.
    pub closing: Vec<String>,
    pub footer: String,
}

const FONT: &str = "font-family:Segoe UI,Helvetica,Arial,sans-serif;";
const INK: &str = "color:#1f2933;";
const MUTED: &str = "color:#5c6670;";

/// The page as one HTML document.
pub fn render(page: &Page<'_>) -> String {
    let (verdict, fg, bg) = page.verdict.look();
    let cell = "padding:0 24px;";
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title) }
            }
            body style=(format!("margin:0;padding:0;background:#f4f5f7;{FONT}{INK}")) {
                table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7;" {
                    tr { td align="center" style="padding:12px 6px;" {
                        table role="presentation" width="600" cellpadding="0" cellspacing="0"
                            style="width:100%;max-width:600px;background:#ffffff;border:1px solid #dde1e6;border-collapse:separate;" {
                            tr { td style=(format!("padding:16px 24px;background:{bg};border-bottom:3px solid {fg};")) {
                                div id="verdict" style=(format!("font-size:22px;font-weight:bold;color:{fg};")) {
                                    @if page.dry_run { "Dry run: " }
                                    (verdict)
                                }
                                div style=(format!("font-size:14px;margin-top:4px;{INK}")) { (page.verdict_detail) }
                            } }
                            tr { td style=(format!("{cell}padding-top:16px;font-size:15px;line-height:1.45;")) {
                                p style="margin:0 0 8px 0;" { "Hello " (page.admin_name) "," }
                                p style="margin:0 0 8px 0;" { (page.intro) }
                            } }
                            @if !page.facts.is_empty() {
                                tr { td style=(cell) { (facts(&page.facts)) } }
                            }
                            @if let Some(reason) = page.reason {
                                tr { td style=(format!("{cell}padding-top:8px;")) {
                                    div id="reason" style=(format!("padding:10px 12px;background:{bg};border-left:3px solid {fg};font-size:14px;line-height:1.4;")) {
                                        strong { "Why: " } (reason)
                                    }
                                } }
                            }
                            @if let Some(counts) = page.counts {
                                tr { td style=(format!("{cell}padding-top:14px;")) { (tiles(counts)) } }
                            }
                            @if let Some(trend) = page.trend {
                                tr { td style=(format!("{cell}padding-top:16px;")) { (picture(trend)) } }
                            }
                            @if let Some(problems) = &page.problems {
                                tr { td style=(format!("{cell}padding-top:16px;")) { (problem_table(problems)) } }
                            }
                            tr { td style=(format!("{cell}padding-top:12px;padding-bottom:8px;font-size:14px;line-height:1.45;")) {
                                @for paragraph in &page.closing {
                                    p style="margin:0 0 8px 0;" { (paragraph) }
                                }
                            } }
                            tr { td style=(format!("padding:12px 24px 16px 24px;border-top:1px solid #e4e7eb;font-size:12px;{MUTED}")) {
                                (page.footer)
                            } }
                        }
                    } }
                }
            }
        }
    }
    .into_string()
}

fn facts(facts: &[(&'static str, String)]) -> Markup {
    html! {
        table role="presentation" cellpadding="0" cellspacing="0" style="font-size:13px;margin:4px 0;" {
            @for (label, value) in facts {
                tr {
                    td style=(format!("padding:2px 12px 2px 0;vertical-align:top;white-space:nowrap;{MUTED}")) { (label) }
                    td style="padding:2px 0;word-break:break-all;" { (value) }
                }
            }
        }
    }
}

/// The counts an administrator checks first, as a row of tiles.
fn tiles(c: &Counts) -> Markup {
    let tiles = [
        ("created", c.created),
        ("updated", c.updated),
        ("unchanged", c.unchanged),
        ("deactivated", c.deactivated),
        ("reactivated", c.reactivated),
        ("kept back", c.kept_back),
        ("errors", c.errors),
    ];
    html! {
        table id="counts" role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:separate;border-spacing:4px 0;table-layout:fixed;" {
            tr {
                @for (label, n) in tiles {
                    @let colour = match (label, n) {
                        (_, 0) => "#8a949e",
                        ("errors", _) => "#a61e1e",
                        ("deactivated", _) => "#8a4b00",
                        _ => "#1f2933",
                    };
                    td align="center" style="padding:8px 2px;background:#f7f8fa;border:1px solid #e4e7eb;" {
                        div class="count" data-label=(label) style=(format!("font-size:18px;font-weight:bold;color:{colour};")) { (thousands(n)) }
                        div style=(format!("font-size:11px;{MUTED}")) { (label) }
                    }
                }
            }
        }
        p style=(format!("margin:6px 0 0 0;font-size:12px;{MUTED}")) {
            (thousands(c.rows)) " rows read, " (thousands(c.skipped)) " skipped for errors, "
            (thousands(c.warnings)) " warnings"
        }
    }
}

fn picture(trend: &Trend) -> Markup {
    html! {
        div style="font-size:15px;font-weight:bold;margin-bottom:6px;" { "The last " (trend.nights.len()) " nights" }
        img id="trend" src=(format!("cid:{TREND_CID}")) width=(chart::WIDTH) height=(chart::HEIGHT)
            alt=(trend.describe())
            style="display:block;width:100%;max-width:560px;height:auto;border:0;";
        p style=(format!("margin:6px 0 0 0;font-size:12px;{MUTED}")) {
            "Tonight is orange; a dashed line marks a typical night. An outlined bar is a file that applied nothing (held for review or rejected); a grey band is a night on which nothing was imported."
        }
    }
}

/// The first problems as a table, stopping before [`TABLE_BYTES`].
fn problem_table(p: &Problems<'_>) -> Markup {
    let th = "text-align:left;padding:6px;border-bottom:2px solid #d5d9de;font-size:12px;";
    let td = "padding:6px;border-bottom:1px solid #e4e7eb;vertical-align:top;font-size:13px;";
    let mut rows = String::new();
    let mut shown = 0;
    for problem in p.shown {
        let row = problem_row(problem, td).into_string();
        if rows.len() + row.len() > TABLE_BYTES {
            break;
        }
        rows.push_str(&row);
        shown += 1;
    }
    html! {
        div style="font-size:15px;font-weight:bold;margin-bottom:6px;" {
            "What to fix"
            span style=(format!("font-weight:normal;font-size:13px;{MUTED}")) {
                " (first " (shown) " of " (thousands(p.total)) ")"
            }
        }
        table id="problems" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed;" {
            tr {
                th style=(format!("{th}width:58px;")) { "Line" }
                th style=(format!("{th}width:120px;")) { "Whose row" }
                th style=(format!("{th}width:90px;")) { "Column" }
                th style=(format!("{th}width:100px;")) { "Value" }
                th style=(th) { "What is wrong" }
            }
            // Each row was rendered (and escaped) by maud above.
            (PreEscaped(rows))
        }
        @if p.total > shown as u64 {
            p style=(format!("margin:6px 0 0 0;font-size:13px;{MUTED}")) {
                "… and " (thousands(p.total - shown as u64)) " more (" (p.rest) ")."
            }
        }
    }
}

fn problem_row(p: &Problem, td: &str) -> Markup {
    let wrap = "overflow-wrap:anywhere;word-break:break-word;";
    html! {
        tr {
            td style=(td) { @if let Some(line) = p.line { (line) } @else { "file" } }
            td style=(format!("{td}{wrap}")) {
                @if let Some(who) = &p.who {
                    (who.username)
                    @let name = [who.first_name.as_str(), who.last_name.as_str()].iter().filter(|n| !n.is_empty()).copied().collect::<Vec<_>>().join(" ");
                    @if !name.is_empty() {
                        br;
                        span style=(MUTED) { (name) }
                    }
                }
            }
            td style=(format!("{td}{wrap}")) { (p.column) }
            td style=(format!("{td}{wrap}font-family:Consolas,Menlo,monospace;")) { (p.value) }
            td style=(format!("{td}{wrap}")) {
                @match p.severity {
                    Severity::Error => span style="color:#a61e1e;font-weight:bold;" { "error " },
                    Severity::Warning => span style="color:#8a4b00;font-weight:bold;" { "warning " },
                }
                (p.message)
            }
        }
    }
}
