//! The SVG plot: grouped bars of requests per second and requests per
//! CPU-second, per workload and target, with the ratio to nginx on top.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::summary::SummaryRow;

const COLORS: [RGBColor; 4] = [
    RGBColor(214, 96, 39),
    RGBColor(46, 110, 170),
    RGBColor(90, 160, 80),
    RGBColor(140, 100, 170),
];

/// Which figure a panel shows.
#[derive(Clone, Copy)]
enum Panel {
    Rps,
    PerCpu,
}

impl Panel {
    fn value(self, r: &SummaryRow) -> f64 {
        match self {
            Panel::Rps => r.rps,
            Panel::PerCpu => r.requests_per_cpu_sec,
        }
    }

    fn ratio(self, r: &SummaryRow) -> Option<f64> {
        match self {
            Panel::Rps => r.rps_vs_nginx,
            Panel::PerCpu => r.cpu_efficiency_vs_nginx,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Panel::Rps => "cache hits per second (median of rounds)",
            Panel::PerCpu => "cache hits per server CPU-second (median of rounds)",
        }
    }
}

/// Writes the plot of `rows` to `path`.
pub fn write_svg(
    path: &Path,
    rows: &[SummaryRow],
    workloads: &[String],
    targets: &[&str],
    subtitle: &str,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let (title, body) = root.split_vertically(50);
    title
        .draw(&Text::new(
            format!("edgecache vs nginx vs Varnish: {subtitle}"),
            (20, 15),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(|e| anyhow!("plot: {e}"))?;
    let panels = body.split_evenly((2, 1));
    for (area, panel) in panels.iter().zip([Panel::Rps, Panel::PerCpu]) {
        draw_panel(&root, area, panel, rows, workloads, targets)?;
    }
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: Panel,
    rows: &[SummaryRow],
    workloads: &[String],
    targets: &[&str],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {e:?}");
    let groups = workloads.len().max(1) as f64;
    let ymax = rows
        .iter()
        .map(|r| panel.value(r))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.18;
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title(), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..groups, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    let per_group = targets.len().max(1) as f64;
    let width = 0.8 / per_group;
    for (ti, target) in targets.iter().enumerate() {
        let color = COLORS[ti % COLORS.len()];
        let bars: Vec<(f64, f64, f64)> = workloads
            .iter()
            .enumerate()
            .filter_map(|(wi, w)| {
                let r = rows
                    .iter()
                    .find(|r| &r.workload == w && r.target == *target)?;
                let x0 = wi as f64 + 0.1 + ti as f64 * width;
                Some((x0, panel.value(r), panel.ratio(r).unwrap_or(0.0)))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x0, v, _)| {
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
            }))
            .map_err(err)?
            .label(target.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart
            .draw_series(bars.iter().filter(|b| b.2 > 0.0).map(|&(x0, v, ratio)| {
                Text::new(
                    format!("{ratio:.2}x"),
                    (x0, v + ymax * 0.06),
                    ("sans-serif", 12).into_font(),
                )
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    // Workload names under each group, in pixels on the whole picture.
    for (wi, w) in workloads.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(wi as f64 + 0.45, 0.0));
        root.draw(&Text::new(
            w.clone(),
            (px, py + 8),
            ("sans-serif", 14).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}
