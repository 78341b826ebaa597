//! The report's SVG chart: throughput, p99 latency and errors per second,
//! one panel each, on the sim's clock, with the faults marked.

use std::path::Path;

use plotters::prelude::*;

use crate::report::LabReport;

/// Draw `r` into `path`.
pub fn svg(r: &LabReport, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1100, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .draw(&Text::new(
            format!(
                "tacvs lab: {} — {} devices, {} directors, {} servers, {:.0} req/s",
                r.scenario, r.devices, r.directors, r.servers, r.rate
            ),
            (20, 12),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(|e| e.to_string())?;
    let panels = body.split_evenly((3, 1));
    let series = &r.sim.series;
    let t_max = series.len().max(1) as f64;
    type Pick = fn(&tacvs_sim::report::Second) -> f64;
    let picks: [(&str, Pick, RGBColor); 3] = [
        ("requests/s", |s| s.requests as f64, BLUE),
        ("p99 latency, ms", |s| s.p99_ms, RGBColor(230, 120, 0)),
        ("errors/s", |s| s.errors as f64, RED),
    ];
    for (area, (label, pick, color)) in panels.iter().zip(picks) {
        let y_max = series.iter().map(pick).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..t_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .y_desc(label)
            .x_desc("seconds")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                series.iter().map(|s| (s.t as f64 + 0.5, pick(s))),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        for f in &r.faults {
            let x = f.at_s.clamp(0.0, t_max);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_max)],
                    BLACK.mix(0.6).stroke_width(1),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{} {}", f.action, f.resolved),
                    (x, y_max * 0.95),
                    ("sans-serif", 12).into_font(),
                )))
                .map_err(|e| e.to_string())?;
        }
        for e in r.events.iter().filter(|e| e.what == "MASTER" && e.t_s >= 0.0) {
            let x = e.t_s.clamp(0.0, t_max);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x, 0.0), (x, y_max)],
                    GREEN.mix(0.7).stroke_width(1),
                )))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{} MASTER", e.director),
                    (x, y_max * 0.8),
                    ("sans-serif", 11).into_font(),
                )))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())
}
