//! PNG charts drawn by hand on an RGB canvas (3x5 pixel font, scaled), encoded
//! with the `png` crate. No font files, no system libraries.

use crate::Result;
use std::path::Path;

const W: usize = 960;
const H: usize = 540;
const L: usize = 90; // plot area margins
const R: usize = 190;
const T: usize = 50;
const B: usize = 70;

pub const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];

struct Canvas {
    px: Vec<u8>,
}

fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' | 'µ' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        ' ' => [0, 0, 0, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        ',' => [0, 0, 0, 2, 4],
        '-' => [0, 0, 7, 0, 0],
        '/' => [1, 1, 2, 4, 4],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '%' => [5, 1, 2, 4, 5],
        ':' => [0, 2, 0, 2, 0],
        '_' => [0, 0, 0, 0, 7],
        '=' => [0, 7, 0, 7, 0],
        '+' => [0, 2, 7, 2, 0],
        _ => [7, 1, 2, 0, 2],
    }
}

impl Canvas {
    fn new() -> Self {
        Canvas {
            px: vec![255; W * H * 3],
        }
    }
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }
    /// Line of width ~`w` pixels (Bresenham with a square pen).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), w: i64, c: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x - w / 2, y - w / 2, x + (w - 1) / 2, y + (w - 1) / 2, c);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (n, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            let ox = x + n as i64 * 4 * scale;
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        let px = ox + col * scale;
                        let py = y + row as i64 * scale;
                        self.rect(px, py, px + scale - 1, py + scale - 1, c);
                    }
                }
            }
        }
    }
    fn text_width(s: &str, scale: i64) -> i64 {
        s.chars().count() as i64 * 4 * scale
    }
    fn save(&self, path: &Path) -> Result<()> {
        let f = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut enc = png::Encoder::new(f, W as u32, H as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header()?;
        w.write_image_data(&self.px)?;
        w.finish()?;
        Ok(())
    }
    fn frame(&mut self, title: &str, ylabel: &str, xlabel: &str) {
        self.text(L as i64, 15, title, 3, BLACK);
        self.text(10, T as i64 - 18, ylabel, 2, BLACK);
        let xw = Self::text_width(xlabel, 2);
        self.text(
            (L + (W - L - R) / 2) as i64 - xw / 2,
            (H - 22) as i64,
            xlabel,
            2,
            BLACK,
        );
    }
    fn legend(&mut self, names: &[String]) {
        for (i, n) in names.iter().enumerate() {
            let y = (T + 10 + i * 24) as i64;
            let x = (W - R + 20) as i64;
            self.rect(x, y, x + 16, y + 10, PALETTE[i % PALETTE.len()]);
            self.text(x + 24, y, n, 2, BLACK);
        }
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

/// Line chart: one series per engine, categorical x positions.
pub fn line_chart(
    path: &Path,
    title: &str,
    ylabel: &str,
    xlabel: &str,
    xs: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let mut c = Canvas::new();
    c.frame(title, ylabel, xlabel);
    let ymax = nice_max(
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let (pw, ph) = ((W - L - R) as f64, (H - T - B) as f64);
    let xpos = |i: usize| {
        L as f64
            + if xs.len() > 1 {
                pw * i as f64 / (xs.len() - 1) as f64
            } else {
                pw / 2.0
            }
    };
    let ypos = |v: f64| T as f64 + ph * (1.0 - v / ymax);
    for k in 0..=5 {
        let v = ymax * k as f64 / 5.0;
        let y = ypos(v) as i64;
        c.rect(L as i64, y, (W - R) as i64, y, GRID);
        let s = compact(v);
        c.text(
            L as i64 - 8 - Canvas::text_width(&s, 2),
            y - 5,
            &s,
            2,
            BLACK,
        );
    }
    for (i, x) in xs.iter().enumerate() {
        let px = xpos(i) as i64;
        c.rect(px, T as i64, px, (H - B) as i64, GRID);
        c.text(
            px - Canvas::text_width(x, 2) / 2,
            (H - B + 10) as i64,
            x,
            2,
            BLACK,
        );
    }
    axes(&mut c);
    for (si, (_, ys)) in series.iter().enumerate() {
        let col = PALETTE[si % PALETTE.len()];
        let pts: Vec<(i64, i64)> = ys
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| (xpos(i) as i64, ypos(*v) as i64))
            .collect();
        for w in pts.windows(2) {
            c.line(w[0], w[1], 3, col);
        }
        for p in &pts {
            c.rect(p.0 - 4, p.1 - 4, p.0 + 4, p.1 + 4, col);
        }
    }
    c.legend(&series.iter().map(|s| s.0.clone()).collect::<Vec<_>>());
    c.save(path)
}

/// Grouped bar chart on a log10 y axis: groups along x, one bar per engine.
pub fn log_bars(
    path: &Path,
    title: &str,
    ylabel: &str,
    groups: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<()> {
    let mut c = Canvas::new();
    c.frame(title, ylabel, "");
    let vals: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
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
    let (pw, ph) = ((W - L - R) as f64, (H - T - B) as f64);
    let ypos = |v: f64| T as f64 + ph * (1.0 - (v.log10() - lo) / (hi - lo));
    let mut e = lo;
    while e <= hi {
        let y = ypos(10f64.powf(e)) as i64;
        c.rect(L as i64, y, (W - R) as i64, y, GRID);
        let s = compact(10f64.powf(e));
        c.text(
            L as i64 - 8 - Canvas::text_width(&s, 2),
            y - 5,
            &s,
            2,
            BLACK,
        );
        e += 1.0;
    }
    let gw = pw / groups.len().max(1) as f64;
    let bw = (gw * 0.8 / series.len().max(1) as f64).max(2.0);
    for (gi, g) in groups.iter().enumerate() {
        let gx = L as f64 + gw * gi as f64 + gw * 0.1;
        for (si, (_, ys)) in series.iter().enumerate() {
            if let Some(v) = ys.get(gi).copied().filter(|v| v.is_finite() && *v > 0.0) {
                let x0 = (gx + bw * si as f64) as i64;
                c.rect(
                    x0,
                    ypos(v) as i64,
                    x0 + bw as i64 - 2,
                    (H - B) as i64,
                    PALETTE[si % PALETTE.len()],
                );
            }
        }
        let cx = (L as f64 + gw * (gi as f64 + 0.5)) as i64;
        c.text(
            cx - Canvas::text_width(g, 2) / 2,
            (H - B + 10) as i64,
            g,
            2,
            BLACK,
        );
    }
    axes(&mut c);
    c.legend(&series.iter().map(|s| s.0.clone()).collect::<Vec<_>>());
    c.save(path)
}

/// The x and y axis lines, drawn over the grid.
fn axes(c: &mut Canvas) {
    c.rect(
        L as i64,
        (H - B) as i64,
        (W - R) as i64,
        (H - B) as i64 + 1,
        BLACK,
    );
    c.rect(L as i64 - 1, T as i64, L as i64, (H - B) as i64, BLACK);
}
