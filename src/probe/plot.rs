//! `--plot FILE.svg`: one panel per region; edges along the x axis,
//! nearest first; one line per answer kind (and phase) at the median total
//! time, with the 99th percentile as hollow circles.

use std::collections::BTreeSet;
use std::path::Path;

use plotters::prelude::*;

use super::report::Record;

/// Why the plot could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("plotting to {path}: {message}")]
pub struct PlotError {
    /// The output file.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws `records` into an SVG file at `path`.
pub fn draw(records: &[Record], path: &Path) -> Result<(), PlotError> {
    let error = |e: &dyn std::fmt::Display| PlotError {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut regions: Vec<&str> = Vec::new();
    for r in records {
        if !regions.contains(&r.region.as_str()) {
            regions.push(&r.region);
        }
    }
    if regions.is_empty() {
        return Err(error(&"no samples to plot"));
    }
    let height = 380 * u32::try_from(regions.len()).unwrap_or(1).max(1);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(&e))?;
    let panels = root.split_evenly((regions.len(), 1));
    for (panel, region) in panels.iter().zip(&regions) {
        panel_for(panel, region, records).map_err(|e| error(&e))?;
    }
    root.present().map_err(|e| error(&e))?;
    Ok(())
}

type Panel<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn panel_for(
    panel: &Panel<'_>,
    region: &str,
    records: &[Record],
) -> Result<(), Box<dyn std::error::Error>> {
    let mine: Vec<&Record> = records.iter().filter(|r| r.region == region).collect();
    // Edges, nearest first.
    let mut edges: Vec<(u32, &str)> = Vec::new();
    for r in &mine {
        if !edges.iter().any(|(_, e)| *e == r.edge) {
            edges.push((r.rtt_ms, &r.edge));
        }
    }
    edges.sort();
    let edge_index = |edge: &str| edges.iter().position(|(_, e)| *e == edge).unwrap_or(0);
    let y_max = mine.iter().map(|r| r.p99_ms).fold(1.0_f64, f64::max) * 1.15;
    let x_max = edges.len().saturating_sub(1).max(1) as f64;
    let labels: Vec<String> = edges
        .iter()
        .map(|(rtt, e)| format!("{e} ({rtt} ms)"))
        .collect();
    let mut chart = ChartBuilder::on(panel)
        .caption(format!("clients in {region}"), ("sans-serif", 20))
        .margin(12)
        .margin_right(70)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3..x_max + 0.3, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_labels(edges.len().max(2))
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 0.01 || i < 0.0 {
                return String::new();
            }
            labels.get(i as usize).cloned().unwrap_or_default()
        })
        .y_desc("ms (p50 line, p99 circles)")
        .draw()?;
    let series: BTreeSet<(&str, Option<&str>)> =
        mine.iter().map(|r| (r.kind, r.phase.as_deref())).collect();
    for (i, (kind, phase)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut points: Vec<(f64, f64, f64)> = mine
            .iter()
            .filter(|r| r.kind == *kind && r.phase.as_deref() == *phase)
            .map(|r| (edge_index(&r.edge) as f64, r.p50_ms, r.p99_ms))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label = match phase {
            Some(p) => format!("{kind} ({p})"),
            None => kind.to_string(),
        };
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(x, p50, _)| (*x, *p50)),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(|(x, p50, _)| Circle::new((*x, *p50), 3, color.filled())),
        )?;
        chart.draw_series(
            points
                .iter()
                .map(|(x, _, p99)| Circle::new((*x, *p99), 4, color.stroke_width(1))),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
