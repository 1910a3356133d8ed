//! `rosterd runs`: a district's import history, one run's report or
//! changes, and undo.

use std::io::Write;
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::clock::Clock;
use crate::config::Config;
use crate::import;
use crate::store;

use super::import::deliver_now;
use super::{Format, open_store, print_report};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    #[arg(required = true, value_name = "SUBDOMAIN")]
    subdomain: Option<String>,
    /// Show this run's full report instead of the list
    #[arg(long)]
    id: Option<i64>,
    /// With --id: list what the run changed, per user and field (before and
    /// after; passwords only as "changed")
    #[arg(long, requires = "id")]
    changes: bool,
    /// How many runs to list
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Output format. The list: text (times in the district's time zone) or
    /// json (RFC 3339 UTC); with --id, the run's report or changes: text,
    /// csv or json
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Undo a users import: restore every value it changed and deactivate the
    /// users it created (dry run unless --apply)
    #[command(
        after_help = "Possible only while no later run changed the same users; otherwise it names the runs\n\
in the way (undo those first, newest first). The undo is itself a run: listed by `rosterd runs`,\n\
emailed to the administrator, and undoable.\n\nExamples:\n  rosterd runs undo lincoln-usd 42\n  rosterd runs undo lincoln-usd 42 --apply"
    )]
    Undo {
        subdomain: String,
        /// The run to undo (`rosterd runs SUB` lists them)
        run: i64,
        /// Do it; without this, only show what would change
        #[arg(long)]
        apply: bool,
    },
}

/// A value of a change list as a person reads it: `(blank)` for nothing.
pub(super) fn show_or_blank(v: &str) -> std::borrow::Cow<'_, str> {
    if v.is_empty() {
        "(blank)".into()
    } else {
        crate::domain::text::echo(v, crate::domain::text::ECHO_CHARS)
    }
}

/// One change, its cells as the CSV has them, under the CSV's column names.
fn change_json(cells: [&str; 5]) -> serde_json::Value {
    let [username, change, field, before, after] = cells;
    serde_json::json!({
        "username": username,
        "change": change,
        "field": field,
        "before": before,
        "after": after,
    })
}

/// A run's changes as one JSON document, `{"district", "run", "changes":
/// [{"username", "change", "field", "before", "after"}, …]}`, written as
/// `changes` yields them: a run of a million changes is never held in memory.
fn write_changes_json<W: Write>(
    out: &mut W,
    district: &str,
    run: i64,
    changes: impl FnOnce(&mut dyn FnMut(serde_json::Value) -> anyhow::Result<()>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write!(
        out,
        "{{\n  \"district\": {},\n  \"run\": {run},\n  \"changes\": [",
        serde_json::to_string(district)?
    )?;
    let mut first = true;
    changes(&mut |change| {
        out.write_all(if first { b"\n    " } else { b",\n    " })?;
        first = false;
        serde_json::to_writer(&mut *out, &change)?;
        Ok(())
    })?;
    writeln!(out, "{}]\n}}", if first { "" } else { "\n  " })?;
    Ok(())
}

/// `runs undo`: undo a run, or show what undoing it would do.
fn undo_command(
    config: &Config,
    clock: Arc<dyn Clock>,
    subdomain: &str,
    run: i64,
    apply: bool,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let mut store = open_store(config)?;
    let t = store.require_tenant(subdomain)?;
    let ctx = crate::daemon::import_context(config, clock.clone())?;
    let undo = import::journal::undo(&mut store.conn, &ctx, &t, run, apply)?;
    if apply {
        let id = undo.report.run_id.unwrap_or_default();
        writeln!(
            out,
            "undid run {run} of {} as run {id}: {} users restored, {} deactivated; the administrator is emailed",
            t.subdomain, undo.restored, undo.deactivated
        )?;
        deliver_now(config, clock)?;
    } else {
        writeln!(
            out,
            "DRY RUN: undoing run {run} of {} would restore {} users and deactivate {}; nothing was changed.",
            t.subdomain, undo.restored, undo.deactivated
        )?;
        writeln!(
            out,
            "what run {run} changed: rosterd runs {} --id {run} --changes\nto do it: rosterd runs undo {} {run} --apply",
            t.subdomain, t.subdomain
        )?;
    }
    Ok(0)
}

/// `rosterd runs …`: undo, or the history, one report, one run's changes.
pub(super) fn runs_command(
    config: &Config,
    clock: Arc<dyn Clock>,
    args: RunsArgs,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    if let Some(RunsAction::Undo {
        subdomain,
        run,
        apply,
    }) = args.action
    {
        return undo_command(config, clock, &subdomain, run, apply, out);
    }
    let store = open_store(config)?;
    let t = store.require_tenant(args.subdomain.as_deref().unwrap_or_default())?;
    if let (Some(id), true) = (args.id, args.changes) {
        // Checked first, so an unknown run is an error, not an empty list.
        store::load_report(&store.conn, t.id, id)?;
        // A held run applied nothing: its preview, as emailed, is the list.
        let held = store::held_changes(&store.conn, id)?;
        if let Some(preview) = held {
            eprintln!(
                "run {id} was held: nothing was applied; these are the changes it would make (the administrator's changes.csv)"
            );
            if args.format == Format::Json {
                write_changes_json(out, &t.subdomain, id, |each| {
                    let mut rows = csv::Reader::from_reader(preview.as_bytes());
                    for row in rows.records() {
                        let row = row?;
                        // The preview's cells are guarded for spreadsheets;
                        // JSON gives them as they are.
                        each(change_json(std::array::from_fn(|i| {
                            crate::domain::text::csv_original(row.get(i).unwrap_or_default())
                        })))?;
                    }
                    Ok(())
                })?;
            } else {
                out.write_all(preview.as_bytes())?;
            }
            return Ok(0);
        }
        if args.format == Format::Json {
            write_changes_json(out, &t.subdomain, id, |each| {
                import::journal::for_each_change(&store.conn, t.id, id, |c| {
                    each(change_json(c.cells().each_ref().map(|v| v.as_ref())))
                })
            })?;
            return Ok(0);
        }
        if args.format == Format::Csv {
            let mut w = crate::domain::text::CsvOut::new(&mut *out);
            w.row(import::journal::CHANGES_HEADER)?;
            import::journal::for_each_change(&store.conn, t.id, id, |c| Ok(w.row(c.cells())?))?;
            w.flush()?;
            return Ok(0);
        }
        let mut any = false;
        import::journal::for_each_change(&store.conn, t.id, id, |c| {
            any = true;
            let what = if c.field.is_empty() {
                String::new()
            } else {
                format!(
                    "  {}: {} -> {}",
                    c.field,
                    show_or_blank(&c.before),
                    show_or_blank(&c.after)
                )
            };
            writeln!(
                out,
                "{:<32} {:<11}{what}",
                crate::domain::text::echo(&c.username, crate::domain::text::ECHO_CHARS),
                c.change
            )?;
            Ok(())
        })?;
        if !any {
            writeln!(
                out,
                "run {id} changed no user (only users imports and undos journal their changes)"
            )?;
        }
        return Ok(0);
    }
    if let Some(id) = args.id {
        let report = store::load_report(&store.conn, t.id, id)?;
        print_report(&report, args.format, out)?;
        return Ok(0);
    }
    let runs = store.runs(t.id, args.limit)?;
    match args.format {
        Format::Json => {
            super::write_district_list(out, &t.subdomain, "runs", &runs)?;
            return Ok(0);
        }
        Format::Csv => anyhow::bail!(
            "--format csv is one run's problems: add --id RUN (the list itself is text or json)"
        ),
        Format::Text => {}
    }
    let tz = super::tenant::tenant_tz(config, &t);
    if runs.is_empty() {
        writeln!(out, "{} has no imports yet", t.subdomain)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:>5} {:<23} {:<6} {:<6} {:<20} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "ID",
        "FINISHED",
        "KIND",
        "SOURCE",
        "OUTCOME",
        "ROWS",
        "CREATED",
        "UPDATED",
        "UNCHANGED",
        "DEACT",
        "REACT",
        "KEPT",
        "SKIPPED",
        "WARN"
    )?;
    for r in runs {
        writeln!(
            out,
            "{:>5} {:<23} {:<6} {:<6} {:<20} {:>7} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
            r.id,
            super::status::stored_time(&r.finished_at, tz),
            r.kind,
            r.source,
            r.outcome,
            r.rows,
            r.created,
            r.updated,
            r.unchanged,
            r.deactivated,
            r.reactivated,
            r.kept_back,
            r.skipped,
            r.warnings
        )?;
        if let Some(reason) = r.reason {
            writeln!(out, "      why: {reason}")?;
        }
        if let Some(resolution) = r.resolution {
            writeln!(out, "      then: {resolution}")?;
        }
    }
    writeln!(
        out,
        "\nfull report of one run: rosterd runs {} --id ID",
        t.subdomain
    )?;
    Ok(0)
}
