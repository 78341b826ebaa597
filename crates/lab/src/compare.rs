//! `tacvs lab compare`: several scenarios (the 2016 story's fronts) run one
//! after the other on the same topology, at each fleet size, into one table
//! (`compare.txt`, `compare.json`) and one chart (`compare.svg`): requests/s,
//! p50 / p99, failures, the directors' CPU per request and memory, and
//! whether the servers saw the devices' own addresses.

use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::runner::{RunOptions, run};
use crate::scenario::Scenario;
use crate::topo::LabError;

/// One scenario at one fleet size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Its front.
    pub front: String,
    /// Devices.
    pub devices: usize,
    /// Offered rate (after `--scale`).
    pub offered: f64,
    /// Completed requests per second.
    pub throughput: f64,
    /// Latency, ms.
    pub p50_ms: f64,
    /// Latency, ms.
    pub p99_ms: f64,
    /// Failed requests (both simulators).
    pub failures: u64,
    /// Requests completed in the window.
    pub requests: u64,
    /// Directors' CPU per request, µs (processes + softirq), when measured.
    pub cpu_us: Option<f64>,
    /// Of which in processes.
    pub process_us: Option<f64>,
    /// Of which in softirq on the directors' CPU.
    pub softirq_us: Option<f64>,
    /// DR: of the softirq, the XDP program's own run time, µs.
    #[serde(default)]
    pub program_us: Option<f64>,
    /// Directors' resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Kernel memory for the front, bytes, and what it is.
    pub kernel: Option<(u64, String)>,
    /// Whether the servers journaled the devices' own addresses.
    pub saw_devices: String,
    /// DR attach mode.
    pub attach: Option<String>,
    /// Every check held.
    pub ok: bool,
    /// Why the run did not happen, if it did not.
    pub error: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Comparison {
    /// Rate multiplier used.
    pub scale: f64,
    /// One row per scenario and size, in run order.
    pub rows: Vec<Row>,
}

impl Comparison {
    /// Every run happened and met its checks.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok && r.error.is_none())
    }
}

/// Run each scenario at each size (`devices` empty: the scenario's own),
/// write `DIR/compare/compare.{json,txt,svg}` after every run (a long
/// comparison that stops part-way keeps what it has).
pub async fn compare(
    scenarios: &[Scenario],
    devices: &[usize],
    opts: &RunOptions,
    mut progress: impl FnMut(&Row),
) -> Result<Comparison, LabError> {
    let out = opts.dir.join("compare");
    std::fs::create_dir_all(&out)
        .map_err(|err| LabError::Io { path: out.display().to_string(), err })?;
    let mut c = Comparison { scale: opts.scale, rows: Vec::new() };
    for sc in scenarios {
        let sizes: Vec<usize> =
            if devices.is_empty() { vec![sc.topology.devices] } else { devices.to_vec() };
        for &n in &sizes {
            let mut one = sc.clone();
            one.topology.devices = n;
            if !devices.is_empty() {
                one.name = format!("{}-{n}", sc.name);
            }
            let offered = one.workload.rate_for(n) * opts.scale;
            let row = match run(&one, opts).await {
                Ok(r) => {
                    let single = r.single_connect.as_ref();
                    let t = &r.sim.total;
                    Row {
                        scenario: sc.name.clone(),
                        front: r.front.clone(),
                        devices: n,
                        offered,
                        throughput: t.throughput + single.map_or(0.0, |s| s.total.throughput),
                        p50_ms: t.latency_ms.p50,
                        p99_ms: t.latency_ms.p99,
                        failures: t.errors + single.map_or(0, |s| s.total.errors),
                        requests: t.requests + single.map_or(0, |s| s.total.requests),
                        cpu_us: r.director_cost.as_ref().map(|c| c.total_us),
                        process_us: r.director_cost.as_ref().map(|c| c.process_us),
                        softirq_us: r.director_cost.as_ref().map(|c| c.softirq_us),
                        program_us: r.director_cost.as_ref().and_then(|c| c.program_us),
                        rss_bytes: r.director_cost.as_ref().map(|c| c.rss_bytes),
                        kernel: r
                            .director_cost
                            .as_ref()
                            .map(|c| (c.kernel_bytes, c.kernel_what.clone())),
                        saw_devices: r.servers_saw.verdict(),
                        attach: r.attach.clone(),
                        ok: r.ok(),
                        error: None,
                    }
                }
                Err(e) => Row {
                    scenario: sc.name.clone(),
                    front: sc.topology.front.name().into(),
                    devices: n,
                    offered,
                    error: Some(e.to_string()),
                    ..Row::default()
                },
            };
            progress(&row);
            c.rows.push(row);
            write(&c, &out)?;
        }
    }
    Ok(c)
}

fn write(c: &Comparison, dir: &Path) -> Result<(), LabError> {
    crate::report::write_three(dir, "compare", c, &table(c), |p| svg(c, p))
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1048576.0)
}

/// The comparison table's columns (a row is an array of as many cells).
const TITLES: [&str; 15] = [
    "front",
    "devices",
    "offered/s",
    "req/s",
    "p50 ms",
    "p99 ms",
    "failures",
    "CPU µs/req",
    "(proc",
    "softirq",
    "XDP prog)",
    "RSS MiB",
    "kernel MiB",
    "device addrs",
    "checks",
];

/// The table people read.
pub fn table(c: &Comparison) -> String {
    let titles = TITLES;
    use std::fmt::Write as _;

    let rows: Vec<[String; TITLES.len()]> = c
        .rows
        .iter()
        .map(|r| {
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let front = match &r.attach {
                Some(a) => format!("{} ({a})", r.scenario),
                None => r.scenario.clone(),
            };
            if let Some(e) = &r.error {
                let mut row: [String; TITLES.len()] = Default::default();
                row[0] = front;
                row[1] = r.devices.to_string();
                row[TITLES.len() - 1] = format!("not run: {e}");
                return row;
            }
            [
                front,
                r.devices.to_string(),
                format!("{:.0}", r.offered),
                format!("{:.0}", r.throughput),
                format!("{:.2}", r.p50_ms),
                format!("{:.2}", r.p99_ms),
                r.failures.to_string(),
                opt(r.cpu_us),
                opt(r.process_us),
                opt(r.softirq_us),
                r.program_us.map_or("-".into(), |v| format!("{v:.2}")),
                r.rss_bytes.map_or("-".into(), mib),
                r.kernel.as_ref().map_or("-".into(), |(b, _)| mib(*b)),
                r.saw_devices.clone(),
                if r.ok { "pass".into() } else { "FAIL".into() },
            ]
        })
        .collect();
    let mut w: Vec<usize> = titles.iter().map(|t| t.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate().take(TITLES.len() - 1) {
            w[i] = w[i].max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tacvs lab compare: same topology, devices and servers; load grows with the fleet (×{} scale)",
        c.scale
    );
    let line = |s: &mut String, cells: &[String]| {
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(s, "{cell:<width$}", width = w[0]);
            } else if i == cells.len() - 1 {
                let _ = write!(s, "  {cell}");
            } else {
                let _ = write!(s, "  {cell:>width$}", width = w[i]);
            }
        }
        s.push('\n');
    };
    line(&mut s, &titles.map(String::from));
    for row in &rows {
        line(&mut s, row);
    }
    let kernels: Vec<String> = c
        .rows
        .iter()
        .filter_map(|r| r.kernel.as_ref().map(|(_, w)| format!("{}: {w}", r.scenario)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !kernels.is_empty() {
        let _ = writeln!(s, "kernel memory: {}", kernels.join("; "));
    }
    s.push_str(
        "CPU µs/req: the directors' processes (user + system) plus softirq on the CPU their \
            packets are steered to, each less its idle rate, per completed request; XDP prog: \
            the DR program's own run time, part of the softirq (docs/benchmarks.md)\n",
    );
    s
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

/// Four panels side by side (requests/s, p99, directors' CPU per request,
/// failures) against the fleet size, one line per scenario.
pub fn svg(c: &Comparison, path: &Path) -> Result<(), String> {
    let root = SVGBackend::new(path, (1200, 820)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .draw(&Text::new(
            "tacvs lab compare: the 2016 story's fronts, same topology and load",
            (20, 12),
            ("sans-serif", 18).into_font(),
        ))
        .map_err(|e| e.to_string())?;
    let mut sizes: Vec<usize> = c.rows.iter().map(|r| r.devices).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut names: Vec<&str> = Vec::new();
    for r in &c.rows {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    let x_of = |d: usize| sizes.iter().position(|&s| s == d).unwrap_or(0) as f64;
    type Pick = fn(&Row) -> Option<f64>;
    let panels: [(&str, Pick); 4] = [
        ("requests/s", |r| Some(r.throughput)),
        ("p99 latency, ms", |r| Some(r.p99_ms)),
        ("directors' CPU µs per request", |r| r.cpu_us),
        ("failed requests", |r| Some(r.failures as f64)),
    ];
    let areas = body.split_evenly((2, 2));
    for (area, (label, pick)) in areas.iter().zip(panels) {
        let ok = |r: &&Row| r.error.is_none();
        let y_max = c.rows.iter().filter(ok).filter_map(pick).fold(1.0, f64::max) * 1.15;
        let x_max = (sizes.len().max(2) - 1) as f64;
        let mut chart = ChartBuilder::on(area)
            .caption(label, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.2..x_max + 0.2, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(sizes.len().max(2))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    sizes.get(i as usize).map_or(String::new(), |d| format!("{d} devices"))
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, name) in names.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let pts: Vec<(f64, f64)> = c
                .rows
                .iter()
                .filter(|r| r.scenario == *name && r.error.is_none())
                .filter_map(|r| pick(r).map(|v| (x_of(r.devices), v)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name.to_string())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Scenario names matching `pattern` (`*` matches any run of characters)
/// among the shipped ones.
pub fn shipped_matching(pattern: &str) -> Vec<&'static str> {
    crate::SHIPPED.iter().map(|(n, _)| *n).filter(|n| glob(pattern, n)).collect()
}

fn glob(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((head, rest)) => {
            s.starts_with(head)
                && (0..=s.len() - head.len())
                    .any(|i| s.is_char_boundary(head.len() + i) && glob(rest, &s[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_shipped_names() {
        assert!(glob("story-*", "story-dr"));
        assert!(glob("*-dr", "story-dr"));
        assert!(!glob("story-*", "baseline"));
        assert!(glob("a*b*c", "axxbyyc") && !glob("a*b*c", "axxbyy"));
        assert_eq!(shipped_matching("baseline"), ["baseline"]);
    }

    #[test]
    fn table_and_chart_from_rows() {
        let row = |scenario: &str, devices: usize, cpu: f64| Row {
            scenario: scenario.into(),
            front: "dr".into(),
            devices,
            offered: 100.0,
            throughput: 99.5,
            p50_ms: 1.2,
            p99_ms: 4.5,
            cpu_us: Some(cpu),
            process_us: Some(0.5),
            softirq_us: Some(cpu - 0.5),
            rss_bytes: Some(8 << 20),
            kernel: Some((30 << 20, "BPF maps".into())),
            saw_devices: "yes".into(),
            ok: true,
            ..Row::default()
        };
        let c = Comparison {
            scale: 1.0,
            rows: vec![
                row("story-dr", 1000, 3.0),
                row("story-dr", 15000, 2.5),
                Row { error: Some("haproxy missing".into()), ..row("story-nat", 1000, 0.0) },
            ],
        };
        let t = table(&c);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("front") && lines[1].contains("CPU µs/req"), "{t}");
        assert!(
            lines[2].starts_with("story-dr")
                && lines[2].contains(" 3.0 ")
                && lines[2].ends_with("pass"),
            "{t}"
        );
        assert!(lines[4].contains("not run: haproxy missing"), "{t}");
        assert!(!c.ok());
        let p = std::env::temp_dir().join(format!("tacvs-compare-{}.svg", std::process::id()));
        svg(&c, &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("15000 devices") && text.contains("story-dr"), "{}", &text[..300]);
        let _ = std::fs::remove_file(p);
    }
}
