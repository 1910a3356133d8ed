//! The properties the fuzz targets check, one function per target. Shared by
//! the libFuzzer targets (`fuzz_targets/`, `cargo +nightly fuzz run …`) and by
//! `tests/it/fuzz_corpus.rs`, which replays the committed corpus and every
//! crash ever found through the same functions on stable, in `cargo test`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rosterd::clock::FixedClock;
use rosterd::domain::email::{self, EmailAddress};
use rosterd::domain::text;
use rosterd::import::check::{self, UploadCheck};
use rosterd::import::decode::MAX_RECORD_BYTES;
use rosterd::import::fields::{self, Username};
use rosterd::import::{ImportContext, ImportOptions, Outcome, Report, Source, groups, users};
use rosterd::keys::parse_public_keys;
use rosterd::mail::Composer;
use rosterd::password::Fingerprinter;
use rosterd::store::{NewTenant, Store, Tenant};

struct World {
    store: Store,
    tenant: Tenant,
    ctx: ImportContext,
    file: PathBuf,
}

fn world() -> &'static Mutex<World> {
    static WORLD: OnceLock<Mutex<World>> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rosterd-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let now = "2026-11-21T23:00:00Z".parse().expect("time");
        let ctx = ImportContext {
            clock: Arc::new(FixedClock::new(now)),
            fingerprinter: Fingerprinter::new([7; 32]),
            default_timezone: chrono_tz::America::New_York,
            composer: Composer::new("Rostering <rostering@localhost>").expect("from"),
        };
        let mut store = Store::open(&dir.join("rosterd.sqlite3")).expect("store");
        let add = |sub| NewTenant {
            subdomain: sub,
            admin_name: "A",
            admin_email: "a@example.org",
            timezone: None,
            sso: false,
            window: None,
        };
        store.add_tenant(&add("springfield"), now).expect("tenant");
        store.add_tenant(&add("shelbyville"), now).expect("tenant");
        let tenant = store.require_tenant("springfield").expect("tenant");
        let other = store.require_tenant("shelbyville").expect("tenant");
        store
            .add_school(tenant.id, "Lincoln High", Some("123456789012"), Some("LHS"))
            .expect("school");
        store
            .add_school(tenant.id, "Oak Elementary", None, None)
            .expect("school");
        let file = dir.join("users.csv");
        let seed = |store: &mut Store, t: &Tenant, text: &str| {
            std::fs::write(&file, text).expect("write");
            users::import(&mut store.conn, &ctx, t, &file, &options(false)).expect("seed import");
        };
        seed(
            &mut store,
            &tenant,
            "Username,First Name,Last Name,Email,School,Graduation Year,Access Type,Password\n\
             jdoe,Jane,Doe,jane@example.org,Lincoln High,2029,,\n\
             asmith,Al,Smith,,LHS,K,,\n\
             tkaye,Tom,Kaye,,,,Teacher,\n",
        );
        seed(&mut store, &other, "Username\ntaken.elsewhere\n");
        Mutex::new(World {
            store,
            tenant,
            ctx,
            file,
        })
    })
}

fn options(dry_run: bool) -> ImportOptions {
    ImportOptions {
        dry_run,
        force: true,
        source: Source::Cli,
        upload_id: None,
        file_name: "users.csv".into(),
        email: false,
        holds: None,
        additions_only: false,
        notes: Vec::new(),
        generate_passwords: false,
        passwords_out: None,
    }
}

/// Any bytes uploaded as `users.csv` or given as a groups file: the importer
/// returns a report (applied, or rejected with a reason) and never panics or
/// fails internally; every row is counted once. Dry runs against one SQLite
/// file set up once per process: a district with schools and stored users (so
/// rows take the update path), and another district holding a username.
pub fn csv_import(data: &[u8]) {
    let mut guard = world().lock().unwrap_or_else(|e| e.into_inner());
    let w = &mut *guard;
    std::fs::write(&w.file, data).expect("write input");
    for kind in ["users", "groups"] {
        let report = match kind {
            "users" => users::import(
                &mut w.store.conn,
                &w.ctx,
                &w.tenant,
                &w.file,
                &options(true),
            ),
            _ => groups::import(
                &mut w.store.conn,
                &w.ctx,
                &w.tenant,
                &w.file,
                &options(true),
            ),
        }
        .unwrap_or_else(|e| panic!("{kind} import failed internally: {e:#}"));
        if kind == "users" {
            upload_check_agrees(w, data, &report);
        }
        let c = report.counts;
        match report.outcome {
            Outcome::Rejected => assert!(report.reason.is_some(), "rejected without a reason"),
            _ => {
                let accounted = c.created + c.updated + c.unchanged + c.skipped;
                if kind == "users" {
                    assert_eq!(accounted, c.rows, "every row is counted once: {c:?}");
                } else {
                    assert!(accounted <= c.rows, "{kind}: {c:?}");
                }
            }
        }
        assert!(
            c.errors + c.warnings >= report.problems.len() as u64,
            "{kind}: {c:?}"
        );
        // Whatever the file, what a report echoes of it is capped and shows
        // no control or invisible character, and a rejection for a record
        // over the length limit names a line.
        let safe = |s: &str, max: usize| {
            assert!(
                s.chars().count() <= max * 10 + 40,
                "{kind}: echo not capped: {} chars",
                s.chars().count()
            );
            assert!(
                !s.chars().any(text::is_hidden),
                "{kind}: unescaped hidden character in {s:?}"
            );
        };
        for p in &report.problems {
            safe(&p.column, text::ECHO_CHARS);
            safe(&p.value, text::ECHO_CHARS);
            safe(&p.message, text::MESSAGE_CHARS);
        }
        if let Some(reason) = &report.reason {
            safe(reason, text::MESSAGE_CHARS);
        }
        if longest_record(data) > MAX_RECORD_BYTES as usize {
            assert_eq!(
                report.outcome,
                Outcome::Rejected,
                "{kind}: a record over the limit was read"
            );
        }
    }
}

/// The check an upload of `data` gets as its writes arrive never refuses a
/// file the import (whose `report` is given) accepts, gives the same verdict
/// however the writes cut the file, and words a refusal on one line that
/// shows nothing hidden.
fn upload_check_agrees(w: &World, data: &[u8], report: &Report) {
    let today = w
        .ctx
        .clock
        .now()
        .with_timezone(&w.ctx.timezone_of(&w.tenant))
        .date_naive();
    let rules = Arc::new(check::Rules::load(&w.store.conn, w.tenant.id, today).expect("rules"));
    let whole = UploadCheck::check_bytes(rules.clone(), data, usize::MAX);
    let steps: &[usize] = if data.len() <= 64 * 1024 {
        &[1, 7, 4096]
    } else {
        &[4093, 32 * 1024]
    };
    // A line number may differ where a file breaks its lines with CR alone:
    // lines are counted at LF, so such a record's line is the one the text
    // read so far has reached (as in the import, whose read-ahead decides).
    let digits = |r: &Result<check::Passed, check::Refusal>| match r {
        Ok(passed) => Ok(*passed),
        Err(refusal) => Err(refusal.reason.replace(|c: char| c.is_ascii_digit(), "#")),
    };
    for &step in steps {
        assert_eq!(
            digits(&UploadCheck::check_bytes(rules.clone(), data, step)),
            digits(&whole),
            "the upload check's verdict changed with writes of {step} bytes"
        );
    }
    if let Err(refusal) = whole {
        assert_eq!(
            report.outcome,
            Outcome::Rejected,
            "the upload check refused a file the import accepts: {}",
            refusal.reason
        );
        assert!(
            !refusal.reason.chars().any(text::is_hidden) && refusal.reason.len() < 1000,
            "{:?}",
            refusal.reason
        );
    }
}

/// The longest run of bytes between line breaks: a record is at least as
/// long as its longest line (a quoted line break only makes it longer), so
/// a file with a line over the limit must be rejected. (Decoding may change
/// the length: only plain ASCII inputs are checked this way.)
fn longest_record(data: &[u8]) -> usize {
    if !data.is_ascii() || data.contains(&0) {
        return 0;
    }
    data.split(|&b| b == b'\n' || b == b'\r')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// Every field rule of `users.csv` on any cell text: a clean value or a message
/// for the district, never a panic, and each clean value obeys its rule.
pub fn field_rules(data: &[u8]) {
    let cell = String::from_utf8_lossy(data);
    let cell = cell.as_ref();

    if let Ok(u) = Username::parse(cell) {
        let n = u.display.chars().count();
        assert!((4..=254).contains(&n), "username length {n}");
        assert!(
            u.display
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".@_-+".contains(&b)),
            "{cell:?}"
        );
        assert_eq!(u.key, u.display.to_lowercase());
        assert_eq!(u.display, u.display.trim());
    }
    if let Ok(Some(p)) = fields::parse_password(cell) {
        assert!(!p.is_empty());
    }
    if let Ok(e) = EmailAddress::parse(cell) {
        assert!(e.as_str().contains('@'));
        assert_eq!(
            EmailAddress::parse(e.as_str()).map(|a| a.as_str().to_owned()),
            Ok(e.as_str().to_owned())
        );
    }
    let _ = email::check_address(cell, true);
    let _ = email::check_address(cell, false);
    if let Ok(Some(name)) = fields::parse_name("First Name", cell) {
        assert!(!name.is_empty());
        assert!(!name.chars().any(text::is_hidden), "{cell:?}");
    }
    // Every cell rosterd writes to CSV reads back as the value it holds.
    assert_eq!(text::csv_original(&text::csv_cell(cell)), cell);
    assert!(!text::csv_cell(cell).starts_with(['=', '+', '-', '@', '\t', '\r']));
    let echoed = text::echo(cell, text::ECHO_CHARS);
    assert!(!echoed.chars().any(text::is_hidden), "{cell:?}");
    for oneroster in [false, true] {
        assert_eq!(
            fields::parse_access_type(cell, oneroster).ok(),
            access_type_by_folding(cell, oneroster),
            "{cell:?}"
        );
    }
    for year_end in [2026, 2027] {
        if let Ok(Some(y)) = fields::parse_graduation_year(cell, year_end) {
            // SPEC: E−1 to E+14, where E is the current school year's end.
            assert!(
                (year_end - 1..=year_end + 14).contains(&y),
                "{cell:?} → {y}"
            );
        }
    }
    if let Some(Ok(grade)) = fields::grade_level(cell) {
        assert!((-1..=12).contains(&grade), "{cell:?} → grade {grade}");
    }
    // Spaces fold away, so padding a cell past what grade_level folds on the
    // stack must not change its answer: the two paths agree.
    assert_eq!(
        fields::grade_level(cell),
        fields::grade_level(&format!("{cell}{}", " ".repeat(40))),
        "{cell:?}"
    );
}

/// Access Type as the rule reads: collapse spaces, lower-case, compare. The
/// importer compares word by word without building that string; both must
/// always agree.
fn access_type_by_folding(cell: &str, oneroster: bool) -> Option<fields::AccessChange> {
    use fields::{AccessChange, AccessType};
    let text = cell
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    match text.as_str() {
        "" => Some(AccessChange::Keep),
        "administrator" => Some(AccessChange::Set(AccessType::Administrator)),
        "school administrator" => Some(AccessChange::Set(AccessType::SchoolAdministrator)),
        "manager" => Some(AccessChange::Set(AccessType::Manager)),
        "none" => Some(AccessChange::Remove),
        "student" | "teacher" | "aide" | "proctor" | "guardian" | "parent" | "relative"
            if oneroster =>
        {
            Some(AccessChange::Keep)
        }
        _ => None,
    }
}

/// Any text given to `rosterd key add`: keys or a clean refusal, never a panic;
/// each accepted key, written back as the OpenSSH line the store keeps, parses
/// again to the same fingerprint and size.
pub fn public_keys(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(keys) = parse_public_keys(&text) else {
        return;
    };
    assert!(!keys.is_empty(), "Ok with no key for {text:?}");
    for key in keys {
        assert!(key.fingerprint.starts_with("SHA256:"));
        let line = key.openssh_line();
        let again = parse_public_keys(&line).expect("a stored key line parses again");
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].fingerprint, key.fingerprint);
        assert_eq!(again[0].bits, key.bits);
    }
}
