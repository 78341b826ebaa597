//! The status table people read: like `ipvsadm -L -n --stats`, VRRP first.

use super::protocol::{ServiceStatus, VrrpStatus};

/// Render status like `ipvsadm -L -n --stats`, VRRP first when configured.
pub fn render(services: &[ServiceStatus], vrrp: Option<&VrrpStatus>) -> String {
    let mut s = String::new();
    if let Some(v) = vrrp {
        s.push_str(&format!(
            "VRRP vrid {} on {} ({}): {} priority {} (configured {}), master {}, {:.1} s in state, {} changes, last: {}\n  VIPs {}\n",
            v.vrid,
            v.interface,
            v.source,
            v.state,
            v.priority,
            v.config_priority,
            if v.master.is_empty() { "-" } else { &v.master },
            v.state_for_s,
            v.transitions,
            v.reason,
            v.vips.join(" ")
        ));
    }
    for svc in services {
        s.push_str(&format!(
            "TCP  {} {} ({}), {} active\n",
            svc.listen, svc.scheduler, svc.name, svc.active
        ));
        s.push_str(&format!(
            "  {:<22} {:<14} {:>6} {:>7} {:>10} {:>8}  {}\n",
            "-> RemoteAddress:Port",
            "State",
            "Weight",
            "ActConn",
            "TotConn",
            "CheckMs",
            "LastCheck"
        ));
        for r in &svc.reals {
            let w = if r.weight != r.config_weight {
                format!("{}*", r.weight)
            } else {
                r.weight.to_string()
            };
            s.push_str(&format!(
                "  -> {:<19} {:<14} {:>6} {:>7} {:>10} {:>8.1} {:>8}  {}\n",
                r.address,
                r.state,
                w,
                r.active,
                r.total,
                r.cps,
                r.last_check_ms.map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into()),
                r.last_check
            ));
        }
    }
    s
}
