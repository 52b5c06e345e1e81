//! Charts drawn with plotters, each written twice: `<base>.svg` (SVG backend)
//! and `<base>.png` (bitmap backend into a buffer, encoded with the `png`
//! crate). Text is laid out with ab_glyph from a TrueType file read at run time
//! (`BENCH_FONT`, else DejaVu Sans from Debian's fonts-dejavu-core), so neither
//! fontconfig nor freetype is needed.

use crate::Result;
use plotters::coord::ranged1d::{AsRangedCoord, DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const W: u32 = 960;
const H: u32 = 540;
/// Width of the legend column right of the plot.
const LEGEND_W: u32 = 200;
/// The family every text style asks for; the loaded font is registered under
/// it, and SVG viewers map it to their own sans-serif font.
const FONT: &str = "sans-serif";

pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];
const GRID: RGBColor = RGBColor(225, 225, 225);

/// Font files tried in order after `$BENCH_FONT`: Debian/Ubuntu's
/// fonts-dejavu-core, then the same font where Fedora and Arch put it.
const FONT_FILES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Loads and registers the chart font once. Call it before a long run so a
/// missing font fails at the start, not after the measurements.
pub fn init_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
                .map(PathBuf::from)
                .into_iter()
                .chain(FONT_FILES.iter().map(PathBuf::from))
                .collect();
            let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                format!(
                    "no font for the charts: install Debian's fonts-dejavu-core \
                     (apt-get install -y fonts-dejavu-core) or set BENCH_FONT to a .ttf file; tried {}",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| format!("{}: not a TrueType/OpenType font", path.display()))?;
            Ok(path.clone())
        })
        .as_ref()
        .map(|_| ())
        .map_err(|e| e.clone().into())
}

/// One engine's values; `colour` indexes `PALETTE`, so an engine keeps its
/// colour across charts.
pub struct Series {
    pub name: String,
    pub colour: usize,
    pub values: Vec<f64>,
}

impl Series {
    fn colour(&self) -> RGBColor {
        PALETTE[self.colour % PALETTE.len()]
    }
}

pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}K", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}K", v / 1e3)
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Label of a power of ten: 0.01, 1, 100, 1K, 10M.
fn decade(v: f64) -> String {
    let e = v.log10().round() as i32;
    match e {
        6.. => format!("{}M", 10u64.pow((e - 6) as u32)),
        3.. => format!("{}K", 10u64.pow((e - 3) as u32)),
        0.. => 10u64.pow(e as u32).to_string(),
        _ => format!("{:.*}", (-e) as usize, v),
    }
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// An f64 axis (linear or log) whose grid lines and labels sit exactly at
/// `points` (plotters' own `with_key_points` has no default label formatter).
struct Keyed<R> {
    inner: R,
    points: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ranged for Keyed<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(v, limit)
    }
    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold lines only: the light-line pass gets none.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.points.clone()
        }
    }
    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

fn keyed<R: AsRangedCoord<Value = f64>>(r: R, points: Vec<f64>) -> Keyed<R::CoordDescType>
where
    R::CoordDescType: Ranged<ValueType = f64>,
{
    Keyed {
        inner: r.into(),
        points,
    }
}

/// A chart that can draw itself on any plotters backend.
trait Draw {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws `chart` to `<base>.svg` and `<base>.png`.
fn save(base: &Path, chart: &impl Draw) -> Result<()> {
    init_font()?;
    let svg = base.with_extension("svg");
    {
        let root = SVGBackend::new(&svg, (W, H)).into_drawing_area();
        chart.draw(&root)?;
        root.present()?;
    }
    let mut px = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut px, (W, H)).into_drawing_area();
        chart.draw(&root)?;
        root.present()?;
    }
    let f = std::io::BufWriter::new(std::fs::File::create(base.with_extension("png"))?);
    let mut enc = png::Encoder::new(f, W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&px)?;
    w.finish()?;
    Ok(())
}

/// Splits the canvas into the plot (left) and the legend column (right), with
/// the title across the top of both.
fn layout<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
) -> Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let body = root.margin(8, 0, 0, 0).titled(title, (FONT, 26))?;
    Ok(body.split_horizontally(W - LEGEND_W))
}

/// Legend column: a colour swatch and the engine name per series.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, series: &[Series]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (i, s) in series.iter().enumerate() {
        let y = 30 + 26 * i as i32;
        area.draw(&Rectangle::new(
            [(10, y), (28, y + 12)],
            s.colour().filled(),
        ))?;
        let style = (FONT, 16)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new(s.name.clone(), (36, y + 6), style))?;
    }
    Ok(())
}

struct LineChart<'a> {
    title: &'a str,
    ylabel: &'a str,
    xlabel: &'a str,
    xs: &'a [String],
    series: &'a [Series],
}

impl Draw for LineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (plot, side) = layout(root, self.title)?;
        let ymax = nice_max(
            self.series
                .iter()
                .flat_map(|s| s.values.iter().copied())
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max),
        );
        let last = self.xs.len().saturating_sub(1) as f64;
        let xs = keyed(
            -0.15..last + 0.15,
            (0..self.xs.len()).map(|i| i as f64).collect(),
        );
        let ys = keyed(0.0..ymax, (0..=5).map(|k| ymax * k as f64 / 5.0).collect());
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(10)
            .margin_right(10)
            .margin_top(10)
            .x_label_area_size(55)
            .y_label_area_size(85)
            .build_cartesian_2d(xs, ys)?;
        let label = |x: &f64| {
            self.xs
                .get(x.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .x_label_formatter(&label)
            .y_label_formatter(&|v| compact(*v))
            .x_desc(self.xlabel)
            .y_desc(self.ylabel)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.stroke_width(2))
            .draw()?;
        for s in self.series {
            let pts: Vec<(f64, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| (i as f64, *v))
                .collect();
            chart.draw_series(std::iter::once(PathElement::new(
                pts.clone(),
                s.colour().stroke_width(3),
            )))?;
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 5, s.colour().filled())))?;
        }
        legend(&side, self.series)
    }
}

/// Line chart: one series per engine, categorical x positions, linear y from 0.
pub fn line_chart(
    base: &Path,
    title: &str,
    ylabel: &str,
    xlabel: &str,
    xs: &[String],
    series: &[Series],
) -> Result<()> {
    save(
        base,
        &LineChart {
            title,
            ylabel,
            xlabel,
            xs,
            series,
        },
    )
}

struct LogBars<'a> {
    title: &'a str,
    ylabel: &'a str,
    groups: &'a [String],
    series: &'a [Series],
}

impl Draw for LogBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (plot, side) = layout(root, self.title)?;
        let vals: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let lo = vals
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .max(1e-3)
            .log10()
            .floor();
        let hi = vals
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(1e-2)
            .log10()
            .ceil()
            .max(lo + 1.0);
        let (bottom, top) = (10f64.powf(lo), 10f64.powf(hi));
        let decades: Vec<f64> = (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect();
        let n = self.groups.len().max(1);
        let xs = keyed(0.0..n as f64, (0..n).map(|g| g as f64 + 0.5).collect());
        let ys = keyed((bottom..top).log_scale(), decades);
        let mut chart = ChartBuilder::on(&plot)
            .margin_left(10)
            .margin_right(10)
            .margin_top(10)
            .x_label_area_size(40)
            .y_label_area_size(85)
            .build_cartesian_2d(xs, ys)?;
        let label = |x: &f64| {
            self.groups
                .get(x.floor().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&label)
            .y_label_formatter(&|v| decade(*v))
            .y_desc(self.ylabel)
            .label_style((FONT, 16))
            .axis_desc_style((FONT, 17))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(BLACK.stroke_width(2))
            .draw()?;
        let bw = 0.8 / self.series.len().max(1) as f64;
        for (si, s) in self.series.iter().enumerate() {
            chart.draw_series(s.values.iter().enumerate().filter_map(|(gi, v)| {
                let v = (v.is_finite() && *v > 0.0).then_some(*v)?;
                let x0 = gi as f64 + 0.1 + bw * si as f64;
                Some(Rectangle::new(
                    [(x0, bottom), (x0 + bw * 0.85, v)],
                    s.colour().filled(),
                ))
            }))?;
        }
        legend(&side, self.series)
    }
}

/// Grouped bar chart on a log10 y axis: groups along x, one bar per engine.
pub fn log_bars(
    base: &Path,
    title: &str,
    ylabel: &str,
    groups: &[String],
    series: &[Series],
) -> Result<()> {
    save(
        base,
        &LogBars {
            title,
            ylabel,
            groups,
            series,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decade_labels() {
        let got: Vec<String> = (-2..=7).map(|e| decade(10f64.powi(e))).collect();
        assert_eq!(
            got,
            ["0.01", "0.1", "1", "10", "100", "1K", "10K", "100K", "1M", "10M"]
        );
    }

    #[test]
    fn draws_svg_and_png() {
        if init_font().is_err() {
            eprintln!("no chart font installed: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("bench-chart-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let series = [Series {
            name: "a".into(),
            colour: 0,
            values: vec![1.0, f64::NAN, 300.0],
        }];
        let xs: Vec<String> = ["1", "4", "16"].iter().map(|s| s.to_string()).collect();
        line_chart(&dir.join("l"), "t", "y", "x", &xs, &series).unwrap();
        log_bars(&dir.join("b"), "t", "y", &xs, &series).unwrap();
        for f in ["l.svg", "l.png", "b.svg", "b.png"] {
            assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 100, "{f}");
        }
        let svg = std::fs::read_to_string(dir.join("b.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("16"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
