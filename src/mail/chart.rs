//! The trend picture in the report email: a district's last nights as four
//! small bar charts (created, updated, deactivated, errors per night), tonight
//! in a colour of its own, nights whose file applied nothing drawn in outline,
//! nights without an import shaded, a dashed line at a typical night. Drawn by plotters into memory with a font
//! compiled into the binary (no system fonts), sent as a PNG: mail clients
//! (Outlook, Gmail) do not show SVG.

use std::sync::Once;

use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{IntoSegmentedCoord, SegmentValue};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::domain::report::thousands;
use crate::domain::trend::{Figures, NightState, Trend};

/// The picture's size in pixels: it fits a 600-pixel email with its margins.
pub const WIDTH: u32 = 560;
pub const HEIGHT: u32 = 300;

/// Tonight's bars. No other part of the email uses this colour, so a test
/// can find the picture in a screenshot by it.
pub const TONIGHT: RGBColor = RGBColor(0xd9, 0x48, 0x0f);
/// Earlier nights' bars.
const EARLIER: RGBColor = RGBColor(0x6b, 0x7f, 0x99);
/// Nights without an import.
const NO_FILE: RGBColor = RGBColor(0xe6, 0xe8, 0xeb);
const INK: RGBColor = RGBColor(0x1f, 0x29, 0x33);
const GRID: RGBColor = RGBColor(0xd5, 0xd9, 0xde);

const FONT: &str = "sans-serif";
const LEGEND_HEIGHT: u32 = 26;
const AXIS_HEIGHT: u32 = 22;
const NAME_WIDTH: u32 = 96;

/// The font every label uses, registered with plotters once per process.
fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR)
            .map_err(|_| anyhow::anyhow!("the chart font compiled into rosterd does not load"));
    });
    result
}

/// `trend` drawn as a PNG of [`WIDTH`] × [`HEIGHT`] pixels.
pub fn png(trend: &Trend) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, trend).map_err(|e| anyhow::anyhow!("drawing the trend picture: {e}"))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing the trend picture: {e}"))?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(out)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

fn draw(root: &Area<'_>, trend: &Trend) -> DrawResult {
    root.fill(&WHITE)?;
    let (legend, rest) = root.split_vertically(LEGEND_HEIGHT);
    draw_legend(&legend)?;
    let panel_height = (HEIGHT - LEGEND_HEIGHT - AXIS_HEIGHT) / 4;
    let peaks = trend.peaks().named();
    let tonight = trend.tonight().and_then(|n| n.state.figures()).copied();
    let mut area = rest;
    for (i, (name, peak)) in peaks.iter().enumerate() {
        let last = i == peaks.len() - 1;
        let (panel, below) =
            area.split_vertically(panel_height + if last { AXIS_HEIGHT } else { 0 });
        area = below;
        let value = tonight.map(|f: Figures| f.named()[i].1);
        draw_panel(&panel, trend, i, name, *peak, value, last)?;
    }
    Ok(())
}

fn draw_legend(area: &Area<'_>) -> DrawResult {
    let text = (FONT, 13).into_font().color(&INK);
    let y = 9;
    let mut x = 4;
    let key = |x: i32, style: ShapeStyle| Rectangle::new([(x, y), (x + 11, y + 11)], style);
    for (label, style, width) in [
        ("tonight", TONIGHT.filled(), 78),
        ("earlier nights", EARLIER.filled(), 122),
        ("not applied", EARLIER.stroke_width(2), 104),
        ("no file imported", NO_FILE.filled(), 136),
    ] {
        area.draw(&key(x, style))?;
        area.draw_text(label, &text, (x + 16, y - 1))?;
        x += width;
    }
    // The typical night: a dashed line, as on the panels.
    area.draw(&DashedPathElement::new(
        [(x, y + 6), (x + 14, y + 6)],
        4,
        2,
        INK.stroke_width(1),
    ))?;
    area.draw_text("typical night", &text, (x + 18, y - 1))?;
    Ok(())
}

/// One figure's bars over the nights; `tonight` is tonight's value, if a
/// file came.
fn draw_panel(
    area: &Area<'_>,
    trend: &Trend,
    figure: usize,
    name: &str,
    peak: u64,
    tonight: Option<u64>,
    with_axis: bool,
) -> DrawResult {
    let typical = trend.typical().map(|f| f.named()[figure].1);
    let (names, plot) = area.split_horizontally(NAME_WIDTH);
    names.draw_text(name, &(FONT, 15).into_font().color(&INK), (4, 8))?;
    if let Some(v) = tonight {
        names.draw_text(
            &format!("tonight {}", thousands(v)),
            &(FONT, 14).into_font().color(&TONIGHT),
            (4, 28),
        )?;
    }
    let nights = trend.nights.len() as i32;
    let top = nice_top(peak);
    let mut chart = ChartBuilder::on(&plot)
        .margin_top(9)
        .margin_right(6)
        .y_label_area_size(44)
        .x_label_area_size(if with_axis { AXIS_HEIGHT } else { 0 })
        .build_cartesian_2d(
            (0..nights).into_segmented(),
            (0..top).with_key_points(vec![0, top]),
        )?;
    let dates: Vec<String> = trend
        .nights
        .iter()
        .map(|n| n.date.format("%b %-d").to_string())
        .collect();
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i == nights - 1 => "tonight".into(),
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if (nights - 1 - i) % 7 == 0 => {
            dates.get(*i as usize).cloned().unwrap_or_default()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(GRID)
        .y_label_formatter(&|v: &u64| thousands(*v))
        .y_label_style((FONT, 12).into_font().color(&INK))
        .x_labels(nights as usize)
        .x_label_formatter(&label)
        .x_label_style((FONT, 12).into_font().color(&INK))
        .draw()?;
    let last = trend.nights.len().saturating_sub(1);
    chart.draw_series(trend.nights.iter().enumerate().filter_map(|(i, night)| {
        let x0 = SegmentValue::Exact(i as i32);
        let x1 = SegmentValue::Exact(i as i32 + 1);
        let colour = if i == last { TONIGHT } else { EARLIER };
        let (value, style) = match night.state {
            NightState::BeforeFirst => return None,
            NightState::NoFile => (top, NO_FILE.filled()),
            NightState::Applied(f) => (f.named()[figure].1, colour.filled()),
            NightState::NotApplied(f) => (f.named()[figure].1, colour.stroke_width(2)),
        };
        let mut bar = Rectangle::new([(x0, 0), (x1, value)], style);
        bar.set_margin(0, 0, 2, 2);
        Some(bar)
    }))?;
    if let Some(typical) = typical {
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [
                (SegmentValue::Exact(0), typical),
                (SegmentValue::Exact(nights), typical),
            ],
            4,
            2,
            INK.stroke_width(1),
        )))?;
    }
    Ok(())
}

/// The top of a panel's scale: `peak` rounded up to 1, 2, 3 or 5 times a
/// power of ten, so the labels are round numbers.
fn nice_top(peak: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 3, 5] {
            match step.checked_mul(m) {
                Some(top) if peak <= top => return top,
                Some(_) => {}
                None => return u64::MAX,
            }
        }
        match step.checked_mul(10) {
            Some(next) => step = next,
            None => return u64::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_end_on_round_numbers() {
        let tops: Vec<u64> = [0, 1, 2, 3, 7, 12, 3000, 3001]
            .iter()
            .map(|p| nice_top(*p))
            .collect();
        assert_eq!(tops, [1, 1, 2, 3, 10, 20, 3000, 5000]);
        assert_eq!(nice_top(u64::MAX - 1), u64::MAX);
    }

    #[test]
    fn draws_a_png_of_its_stated_size_with_tonight_in_its_colour() {
        use crate::domain::report::Outcome;
        use crate::domain::trend::{RunFigures, Trend};
        let tz = chrono_tz::America::New_York;
        let tonight: chrono::DateTime<chrono::Utc> = "2026-11-21T07:00:00Z".parse().unwrap();
        let runs: Vec<RunFigures> = (1..30)
            .filter(|d| d % 9 != 0)
            .map(|d| RunFigures {
                finished_at: tonight - chrono::TimeDelta::days(d),
                outcome: if d == 4 {
                    Outcome::Held
                } else {
                    Outcome::Applied
                },
                figures: Figures {
                    created: 10 + d as u64 % 7,
                    updated: 30 + d as u64 % 11,
                    deactivated: d as u64 % 3,
                    errors: if d % 5 == 0 { 4 } else { 0 },
                },
            })
            .chain([RunFigures {
                finished_at: tonight,
                outcome: Outcome::AppliedWithErrors,
                figures: Figures {
                    created: 12,
                    updated: 41,
                    deactivated: 3000,
                    errors: 412,
                },
            }])
            .collect();
        let trend = Trend::new(
            &runs,
            runs.first()
                .map(|r| r.finished_at - chrono::TimeDelta::days(40)),
            tz,
            tonight,
        );
        let png = png(&trend).unwrap();
        if let Some(path) = std::env::var_os("ROSTERD_CHART_OUT") {
            std::fs::write(path, &png).unwrap();
        }
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT));
        let tonight_pixels = pixels
            .chunks(3)
            .filter(|p| p == &[TONIGHT.0, TONIGHT.1, TONIGHT.2])
            .count();
        assert!(
            tonight_pixels > 500,
            "{tonight_pixels} pixels of tonight's colour"
        );
        assert!(png.len() < 64 * 1024, "{} bytes", png.len());
    }
}
