//! The network levers of `raft-supervisor delay` and `loss`: a node delays or drops its
//! OUTGOING peer messages, so replication and elections can be watched at human speed,
//! or stressed. The supervisor sends each node its levers with
//! [`crate::Request::NetLevers`] and reports them from [`crate::NodeStatus::levers`].

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest delay (and jitter) a lever may set: past this a cluster only looks dead, and
/// the delayed messages would pile up for nothing.
pub const MAX_DELAY_US: u64 = 10_000_000;
/// Loss is in parts per million: 1% = 10,000.
pub const LOSS_PPM_ALL: u32 = 1_000_000;

/// What a node does to its outgoing peer messages. All zero: nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetLevers {
    /// Each message leaves this long after it was sent ...
    pub delay_us: u64,
    /// ... plus or minus up to this much, uniformly (messages may overtake each other,
    /// as on a real network; Raft copes).
    pub jitter_us: u64,
    /// Parts per million of messages dropped.
    pub loss_ppm: u32,
}

impl NetLevers {
    pub fn is_off(&self) -> bool {
        *self == NetLevers::default()
    }

    /// The bounds a node enforces on what arrives (the supervisor checks them first).
    pub fn check(&self) -> Result<(), String> {
        if self.delay_us > MAX_DELAY_US || self.jitter_us > MAX_DELAY_US {
            return Err(format!("a delay or jitter is at most {}", show_us(MAX_DELAY_US)));
        }
        if self.jitter_us > self.delay_us {
            return Err(format!(
                "jitter {} is more than the delay {}: give a delay at least as long",
                show_us(self.jitter_us),
                show_us(self.delay_us)
            ));
        }
        if self.loss_ppm > LOSS_PPM_ALL {
            return Err("loss is a percentage from 0 to 100".into());
        }
        Ok(())
    }
}

impl fmt::Display for NetLevers {
    /// `delay 200ms ±50ms, loss 10%`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_off() {
            return f.write_str("none");
        }
        let mut parts = Vec::new();
        if self.delay_us > 0 {
            let jitter = if self.jitter_us > 0 { format!(" ±{}", show_us(self.jitter_us)) } else { String::new() };
            parts.push(format!("delay {}{jitter}", show_us(self.delay_us)));
        }
        if self.loss_ppm > 0 {
            parts.push(format!("loss {}", show_loss(self.loss_ppm)));
        }
        f.write_str(&parts.join(", "))
    }
}

/// `250us`, `200ms`, `1.5s`.
pub fn show_us(us: u64) -> String {
    if us >= 1_000_000 {
        let s = us as f64 / 1e6;
        if us.is_multiple_of(1_000_000) {
            format!("{}s", us / 1_000_000)
        } else {
            format!("{s}s")
        }
    } else if us >= 1000 && us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else if us >= 1000 {
        format!("{}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
    }
}

/// `10%`, `0.5%`.
pub fn show_loss(ppm: u32) -> String {
    let pct = ppm as f64 / 10_000.0;
    format!("{pct}%")
}

/// A delay like `200ms`, `1.5s`, `500us` (a unit is required), up to [`MAX_DELAY_US`];
/// `0` or `off` is none.
pub fn parse_delay(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s == "0" || s.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let hint = || format!("invalid duration `{s}`: use a number with a unit, like 200ms or 1.5s (at most 10s)");
    let value: f64 = number.parse().map_err(|_| hint())?;
    let scale = match unit {
        "us" | "µs" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        _ => return Err(hint()),
    };
    let us = value * scale;
    if !us.is_finite() || us > MAX_DELAY_US as f64 {
        return Err(format!("invalid duration `{s}`: at most {}", show_us(MAX_DELAY_US)));
    }
    Ok(us.round() as u64)
}

/// A loss like `10`, `10%`, `0.5%`, from 0 to 100; `off` is 0. In parts per million.
pub fn parse_loss(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let number = s.strip_suffix('%').unwrap_or(s);
    let hint = || format!("invalid loss `{s}`: give a percentage from 0 to 100, like 10 or 0.5%");
    let pct: f64 = number.parse().map_err(|_| hint())?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(hint());
    }
    Ok((pct * 10_000.0).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        assert_eq!(parse_delay("200ms"), Ok(200_000));
        assert_eq!(parse_delay("1.5s"), Ok(1_500_000));
        assert_eq!(parse_delay("off"), Ok(0));
        assert_eq!(parse_delay("10s"), Ok(MAX_DELAY_US));
        for bad in ["", "200", "11s", "1h", "-1ms", "x", "1.5.2s"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_loss("10"), Ok(100_000));
        assert_eq!(parse_loss("0.5%"), Ok(5_000));
        assert_eq!(parse_loss("100"), Ok(LOSS_PPM_ALL));
        for bad in ["101", "-1", "", "ten"] {
            assert!(parse_loss(bad).is_err(), "{bad}");
        }
        let l = NetLevers { delay_us: 200_000, jitter_us: 50_000, loss_ppm: 100_000 };
        assert_eq!(l.to_string(), "delay 200ms ±50ms, loss 10%");
        assert_eq!(NetLevers::default().to_string(), "none");
        assert_eq!(show_us(1_500_000), "1.5s");
        assert_eq!(show_us(250), "250us");
    }

    #[test]
    fn bounds_are_checked() {
        assert!(NetLevers { delay_us: MAX_DELAY_US + 1, ..Default::default() }.check().is_err());
        assert!(NetLevers { delay_us: 10, jitter_us: 20, loss_ppm: 0 }.check().is_err());
        assert!(NetLevers { loss_ppm: LOSS_PPM_ALL + 1, ..Default::default() }.check().is_err());
        assert!(NetLevers { delay_us: 10, jitter_us: 10, loss_ppm: LOSS_PPM_ALL }.check().is_ok());
    }
}
