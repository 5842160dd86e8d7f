//! Plots for `ustack plot`: the time-sequence (Stevens/tcptrace) graph of one TCP
//! connection from a capture, and cwnd/ssthresh/srtt over time from a TCP event log.
//!
//! Drawing uses `plotters` with the SVG backend, or the bitmap backend for `.png`.
//! Text is rendered with an embedded DejaVu Sans (`ab_glyph`), so no system font or
//! fontconfig is needed and the output is the same on every machine.
//!
//! The data comes from [`crate::timeseq`] and [`crate::trace`]; this module only draws.

use crate::timeseq::{SegmentMark, TimeSequence};
use crate::trace::TraceEvent;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

pub use plotters::style::RGBColor;

/// Colour of data segments.
pub const SEGMENT_COLOR: RGBColor = RGBColor(0x1f, 0x4e, 0xb4);
/// Colour of retransmitted segments.
pub const RETRANSMIT_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
/// Colour of the ACK line.
pub const ACK_COLOR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
/// Colour of the receive-window line.
pub const WINDOW_COLOR: RGBColor = RGBColor(0xe3, 0x9c, 0x1a);
/// Colour of SACK blocks.
pub const SACK_COLOR: RGBColor = RGBColor(0x94, 0x67, 0xbd);

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF shipped by the `dejavu` crate; failure would be a
        // packaging bug, and plotters then reports a font error on first text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Output format, from the file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// PNG bitmap.
    Png,
}

impl Format {
    /// `.svg` or `.png` (case-insensitive).
    ///
    /// # Errors
    /// Any other extension.
    pub fn from_path(p: &Path) -> Result<Format, String> {
        match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(format!("{}: output must end in .svg or .png", p.display())),
        }
    }
}

/// Image size in pixels.
pub const SIZE: (u32, u32) = (1200, 800);

fn with_backend(
    path: &Path,
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
    draw_png: impl FnOnce(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    register_fonts();
    match Format::from_path(path)? {
        Format::Svg => draw(SVGBackend::new(path, SIZE).into_drawing_area()),
        Format::Png => draw_png(BitMapBackend::new(path, SIZE).into_drawing_area()),
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("drawing failed: {e}")
}

/// Draws the time-sequence graph to `path` (`.svg` or `.png`).
///
/// # Errors
/// Unsupported extension, nothing to draw, or the file could not be written.
pub fn draw_time_sequence(ts: &TimeSequence, path: &Path) -> Result<(), String> {
    if ts.segments.is_empty() && ts.acks.is_empty() {
        return Err(format!("connection #{} has no segments to plot", ts.conn));
    }
    with_backend(
        path,
        |area| time_sequence_chart(ts, area),
        |area| time_sequence_chart(ts, area),
    )
}

fn time_sequence_chart<DB: DrawingBackend>(
    ts: &TimeSequence,
    root: DrawingArea<DB, Shift>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let t_max = ts
        .segments
        .iter()
        .map(|s| s.t)
        .chain(ts.acks.iter().map(|a| a.0))
        .fold(0.0f64, f64::max);
    let y_max = ts
        .segments
        .iter()
        .map(|s| s.seq + s.len)
        .chain(ts.windows.iter().map(|w| w.1))
        .chain(ts.sacks.iter().map(|s| s.2))
        .max()
        .unwrap_or(1);
    let x_range = 0.0..(t_max * 1.05).max(1e-6);
    let y_range = 0.0..(y_max as f64 * 1.05).max(1.0);
    let tick = (t_max * 0.004).max(1e-7); // half-width of a segment's end ticks
    let title = match (ts.from, ts.to) {
        (Some(f), Some(t)) => format!("#{} {f} > {t}: time-sequence graph", ts.conn),
        _ => format!("#{}: time-sequence graph", ts.conn),
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(x_range, y_range)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("relative sequence number (bytes)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;

    // Receive window (ack + window) and ACK as stepped lines.
    let stepped = |pts: &[(f64, u64)]| -> Vec<(f64, f64)> {
        let mut out = Vec::with_capacity(pts.len() * 2 + 1);
        for (i, &(t, v)) in pts.iter().enumerate() {
            if i > 0 {
                out.push((t, pts[i - 1].1 as f64));
            }
            out.push((t, v as f64));
        }
        if let Some(&(_, v)) = pts.last() {
            out.push((t_max * 1.05, v as f64));
        }
        out
    };
    if !ts.windows.is_empty() {
        chart
            .draw_series(LineSeries::new(
                stepped(&ts.windows),
                WINDOW_COLOR.stroke_width(2),
            ))
            .map_err(err)?
            .label("receive window (ack + win)")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], WINDOW_COLOR.stroke_width(2)));
    }
    if !ts.acks.is_empty() {
        chart
            .draw_series(LineSeries::new(
                stepped(&ts.acks),
                ACK_COLOR.stroke_width(2),
            ))
            .map_err(err)?
            .label("ACK")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], ACK_COLOR.stroke_width(2)));
    }
    // Each segment: a vertical bar seq..seq+len with short ticks at both ends (tcptrace's
    // "I" shape); retransmissions in red with a cross on top.
    let bar = |s: &SegmentMark, color: RGBColor| {
        let (lo, hi) = (s.seq as f64, (s.seq + s.len) as f64);
        let style = color.stroke_width(2);
        vec![PathElement::new(
            vec![
                (s.t - tick, lo),
                (s.t + tick, lo),
                (s.t, lo),
                (s.t, hi),
                (s.t - tick, hi),
                (s.t + tick, hi),
            ],
            style,
        )]
    };
    let fresh: Vec<_> = ts.segments.iter().filter(|s| !s.retransmission).collect();
    let again: Vec<_> = ts.segments.iter().filter(|s| s.retransmission).collect();
    chart
        .draw_series(fresh.iter().flat_map(|s| bar(s, SEGMENT_COLOR)))
        .map_err(err)?
        .label("data segment")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SEGMENT_COLOR.stroke_width(2)));
    if !again.is_empty() {
        chart
            .draw_series(again.iter().flat_map(|s| bar(s, RETRANSMIT_COLOR)))
            .map_err(err)?
            .label("retransmission")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], RETRANSMIT_COLOR.stroke_width(2))
            });
        chart
            .draw_series(again.iter().map(|s| {
                Cross::new(
                    (s.t, (s.seq + s.len) as f64),
                    5,
                    RETRANSMIT_COLOR.stroke_width(2),
                )
            }))
            .map_err(err)?;
    }
    if !ts.sacks.is_empty() {
        // Drawn a little to the right of the ACK that carried them.
        chart
            .draw_series(ts.sacks.iter().map(|&(t, l, r)| {
                PathElement::new(
                    vec![(t + tick, l as f64), (t + tick, r as f64)],
                    SACK_COLOR.stroke_width(3),
                )
            }))
            .map_err(err)?
            .label("SACK block")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], SACK_COLOR.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
/// Events drawn on the curves but not marked: samples, and changes too frequent or too
/// routine to label (a `cwnd` change comes with the loss event that caused it).
const UNMARKED: &[&str] = &["ack", "cwnd", "window", "window_update_sent"];

/// ssthresh at or above this is "infinite" (not yet set) and not drawn.
const SSTHRESH_INFINITE: u64 = 1 << 31;

/// Draws cwnd and ssthresh (top) and srtt (bottom) for one connection of the log: `conn`,
/// or the first one that appears. Returns the connection drawn.
///
/// # Errors
/// No events for the connection, unsupported extension, or the file could not be written.
pub fn draw_trace(
    events: &[TraceEvent],
    conn: Option<&str>,
    path: &Path,
) -> Result<String, String> {
    let chosen = match conn {
        Some(c) => c.to_string(),
        None => events
            .iter()
            .find_map(|e| e.conn.clone())
            .unwrap_or_default(),
    };
    let evs: Vec<&TraceEvent> = events
        .iter()
        .filter(|e| e.conn.as_deref().unwrap_or("") == chosen)
        .collect();
    if evs.is_empty() {
        return Err(if chosen.is_empty() {
            "no events in the trace".to_string()
        } else {
            format!("no events for connection {chosen}")
        });
    }
    with_backend(
        path,
        |a| trace_chart(&evs, &chosen, a),
        |a| trace_chart(&evs, &chosen, a),
    )?;
    Ok(chosen)
}

fn trace_chart<DB: DrawingBackend>(
    evs: &[&TraceEvent],
    conn: &str,
    root: DrawingArea<DB, Shift>,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(err)?;
    let t0 = evs.iter().map(|e| e.t_us).min().unwrap_or(0);
    let secs = |e: &TraceEvent| (e.t_us - t0) as f64 / 1e6;
    let t_max = evs.iter().map(|e| secs(e)).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let cwnd: Vec<(f64, f64)> = evs
        .iter()
        .filter_map(|e| Some((secs(e), e.cwnd? as f64)))
        .collect();
    let ssthresh: Vec<(f64, f64)> = evs
        .iter()
        .filter_map(|e| {
            let s = e.ssthresh.filter(|&s| s < SSTHRESH_INFINITE)?;
            Some((secs(e), s as f64))
        })
        .collect();
    let srtt: Vec<(f64, f64)> = evs
        .iter()
        .filter_map(|e| Some((secs(e), e.srtt_us? as f64 / 1000.0)))
        .collect();
    let marks: Vec<(f64, f64, String)> = evs
        .iter()
        .filter(|e| e.event.as_deref().is_some_and(|n| !UNMARKED.contains(&n)))
        .filter_map(|e| Some((secs(e), e.cwnd? as f64, e.event.clone()?)))
        .collect();
    let y1 = cwnd
        .iter()
        .chain(&ssthresh)
        .map(|p| p.1)
        .fold(1.0f64, f64::max)
        * 1.1;
    let y2 = srtt.iter().map(|p| p.1).fold(0.001f64, f64::max) * 1.1;

    let title = if conn.is_empty() {
        "TCP congestion control".to_string()
    } else {
        format!("{conn}: congestion control")
    };
    let root = root.titled(&title, ("sans-serif", 24)).map_err(err)?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 6 / 10);
    let mut c1 = ChartBuilder::on(&top)
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..t_max, 0.0..y1)
        .map_err(err)?;
    c1.configure_mesh()
        .y_desc("bytes")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    if !cwnd.is_empty() {
        c1.draw_series(LineSeries::new(cwnd, SEGMENT_COLOR.stroke_width(2)))
            .map_err(err)?
            .label("cwnd")
            .legend(|(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], SEGMENT_COLOR.stroke_width(2))
            });
    }
    if !ssthresh.is_empty() {
        c1.draw_series(LineSeries::new(ssthresh, WINDOW_COLOR.stroke_width(2)))
            .map_err(err)?
            .label("ssthresh")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], WINDOW_COLOR.stroke_width(2)));
    }
    if !marks.is_empty() {
        c1.draw_series(
            marks
                .iter()
                .map(|(t, c, _)| Cross::new((*t, *c), 5, RETRANSMIT_COLOR.stroke_width(2))),
        )
        .map_err(err)?
        .label("event (rto, loss, ...)")
        .legend(|(x, y)| Cross::new((x + 10, y), 5, RETRANSMIT_COLOR.stroke_width(2)));
        c1.draw_series(
            marks.iter().map(|(t, c, name)| {
                Text::new(name.clone(), (*t, *c), ("sans-serif", 12).into_font())
            }),
        )
        .map_err(err)?;
    }
    c1.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;

    let mut c2 = ChartBuilder::on(&bottom)
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..t_max, 0.0..y2)
        .map_err(err)?;
    c2.configure_mesh()
        .x_desc("time (s)")
        .y_desc("srtt (ms)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(err)?;
    if !srtt.is_empty() {
        c2.draw_series(LineSeries::new(srtt, ACK_COLOR.stroke_width(2)))
            .map_err(err)?;
    }
    root.present().map_err(err)
}
