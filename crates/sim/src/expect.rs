//! `--expect` assertions over a report: `errors==0`, `p99<5ms`,
//! `throughput>=10000`, `author.p99<2ms`, `acct.errors==0`,
//! `errors.wrong_key>0`. Latencies are compared in milliseconds; a value may
//! carry `us`, `ms` or `s`.

use crate::report::{Report, Totals};

/// One parsed assertion.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    text: String,
    scope: Option<String>,
    metric: String,
    op: Op,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

const METRICS: &[&str] =
    &["requests", "ok", "fail", "errors", "throughput", "p50", "p90", "p99", "p999", "max", "mean"];

impl Expect {
    /// Parse `[scope.]metric OP value[unit]`.
    pub fn parse(text: &str) -> Result<Expect, String> {
        let t = text.trim();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (i, sym, op) = ops
            .iter()
            .filter_map(|(sym, op)| t.find(sym).map(|i| (i, *sym, *op)))
            .min_by_key(|(i, sym, _)| (*i, usize::MAX - sym.len()))
            .ok_or_else(|| format!("--expect {t:?}: no comparison (use <, <=, >, >=, ==, !=)"))?;
        let (lhs, rhs) = (t[..i].trim(), t[i + sym.len()..].trim());
        let (scope, metric) = match lhs.split_once('.') {
            Some((s, m)) => (Some(s.to_owned()), m.to_owned()),
            None => (None, lhs.to_owned()),
        };
        let is_error_kind = scope.as_deref() == Some("errors");
        // A misspelt kind would never occur and so always "hold".
        if is_error_kind && !crate::report::ERROR_KINDS.contains(&metric.as_str()) {
            return Err(format!(
                "--expect {t:?}: unknown error kind {metric:?} (one of {})",
                crate::report::ERROR_KINDS.join(", ")
            ));
        }
        if !is_error_kind && !METRICS.contains(&metric.as_str()) {
            return Err(format!(
                "--expect {t:?}: unknown metric {metric:?} (one of {})",
                METRICS.join(", ")
            ));
        }
        if let Some(s) = &scope
            && !matches!(s.as_str(), "authen" | "author" | "acct" | "errors")
        {
            return Err(format!(
                "--expect {t:?}: unknown scope {s:?} (authen, author, acct, or errors.KIND)"
            ));
        }
        let (num, mult) = if let Some(n) = rhs.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = rhs.strip_suffix("us").or_else(|| rhs.strip_suffix("µs")) {
            (n, 0.001)
        } else if let Some(n) = rhs.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (rhs, 1.0)
        };
        let value = num
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("--expect {t:?}: {rhs:?} is not a number"))?
            * mult;
        Ok(Expect { text: t.to_owned(), scope, metric, op, value })
    }

    /// The same bound for a load `factor` times the one it was written for:
    /// counts and throughput scale, latencies do not (a scenario run at half
    /// rate expects half the throughput, not half the p99).
    pub fn scaled(&self, factor: f64) -> Expect {
        let counts = self.scope.as_deref() == Some("errors")
            || matches!(self.metric.as_str(), "requests" | "ok" | "fail" | "errors" | "throughput");
        if !counts || factor == 1.0 {
            return self.clone();
        }
        let value = self.value * factor;
        let lhs = match &self.scope {
            Some(s) => format!("{s}.{}", self.metric),
            None => self.metric.clone(),
        };
        let sym = match self.op {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        };
        // Integer bounds stay integers (errors<=100 at ×0.5 is errors<=50).
        let value =
            if matches!(self.metric.as_str(), "throughput") { value } else { value.round() };
        Expect { text: format!("{lhs}{sym}{} (×{factor})", trim(value)), value, ..self.clone() }
    }

    /// The unit the actual value is printed in.
    fn unit(&self) -> &'static str {
        match self.metric.as_str() {
            _ if self.scope.as_deref() == Some("errors") => "",
            "p50" | "p90" | "p99" | "p999" | "max" | "mean" => " ms",
            "throughput" => " req/s",
            _ => "",
        }
    }

    fn actual(&self, r: &Report) -> f64 {
        if self.scope.as_deref() == Some("errors") {
            return r.errors_by_kind.get(&self.metric).copied().unwrap_or(0) as f64;
        }
        let empty = Totals::default();
        let t = match &self.scope {
            Some(s) => r.by_type.get(s).unwrap_or(&empty),
            None => &r.total,
        };
        let l = &t.latency_ms;
        match self.metric.as_str() {
            "requests" => t.requests as f64,
            "ok" => t.ok as f64,
            "fail" => t.fail as f64,
            "errors" => t.errors as f64,
            "throughput" => t.throughput,
            "p50" => l.p50,
            "p90" => l.p90,
            "p99" => l.p99,
            "p999" => l.p999,
            "max" => l.max,
            _ => l.mean,
        }
    }

    /// Check against a report: Ok(description) or Err(description).
    pub fn check(&self, r: &Report) -> Result<String, String> {
        let a = self.actual(r);
        let ok = match self.op {
            Op::Lt => a < self.value,
            Op::Le => a <= self.value,
            Op::Gt => a > self.value,
            Op::Ge => a >= self.value,
            Op::Eq => a == self.value,
            Op::Ne => a != self.value,
        };
        let msg = format!("{} (actual {}{})", self.text, trim(a), self.unit());
        if ok { Ok(msg) } else { Err(msg) }
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.3}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::default();
        r.total.errors = 0;
        r.total.throughput = 12000.0;
        r.total.latency_ms.p99 = 1.5;
        let mut a = Totals::default();
        a.latency_ms.p99 = 3.0;
        r.by_type.insert("author".into(), a);
        r.errors_by_kind.insert("wrong_key".into(), 4);
        r
    }

    #[test]
    fn scaling_touches_counts_not_latency() {
        let r = report();
        let t = Expect::parse("throughput>=20000").unwrap();
        assert!(t.check(&r).is_err());
        assert!(t.scaled(0.5).check(&r).is_ok(), "{:?}", t.scaled(0.5));
        let p = Expect::parse("p99<2ms").unwrap();
        assert_eq!(p.scaled(0.5), p);
        let e = Expect::parse("errors<=3").unwrap().scaled(0.5);
        assert!(e.text.starts_with("errors<=2"), "{}", e.text);
    }

    #[test]
    fn parse_and_check() {
        let r = report();
        for (e, want) in [
            ("errors==0", true),
            ("p99<5ms", true),
            ("p99 < 1500us", false),
            ("p99<=1.5", true),
            ("throughput>=10000", true),
            ("author.p99<2ms", false),
            ("acct.errors==0", true),
            ("errors.wrong_key>0", true),
            ("errors.reset==0", true),
            ("max<1s", true),
        ] {
            assert_eq!(Expect::parse(e).unwrap().check(&r).is_ok(), want, "{e}");
        }
        assert!(Expect::parse("p98<1").is_err());
        assert!(Expect::parse("p99 about 1").is_err());
        assert!(Expect::parse("nat.p99<1").is_err());
        assert!(Expect::parse("p99<fast").is_err());
        // A misspelt error kind is refused, not "always 0".
        let e = Expect::parse("errors.wrong_kye==0").unwrap_err();
        assert!(e.contains("unknown error kind") && e.contains("wrong_key"), "{e}");
        assert_eq!(
            Expect::parse("author.p99<2ms").unwrap().check(&r).unwrap_err(),
            "author.p99<2ms (actual 3 ms)"
        );
    }
}
