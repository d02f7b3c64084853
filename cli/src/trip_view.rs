//! A trip's progress from its ledger totals, as `bus trip` and `bus ride` print it.

use busline_core::ledger::{TripState, TripTotals, rfc3339};
use std::fmt::Write as _;

/// The trip's state, its stops' counts and its queues' flows, for a terminal. `places` are
/// extra lines naming where things are (`manifest`, `quarantine`, ...).
pub fn trip_table(totals: &TripTotals, places: &[(&str, String)]) -> String {
    let progress = totals.progress();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trip {}: {}; first bus {}, last {}",
        totals.trip,
        progress.state,
        rfc3339(totals.first_at_ms),
        rfc3339(totals.last_at_ms)
    );
    if let Some(completion) = &totals.completion {
        let _ = writeln!(
            out,
            "completed {} at {} by {}{}",
            match completion.state {
                TripState::CompletedWithFailures => "with failures",
                _ => "cleanly",
            },
            rfc3339(completion.at_ms),
            completion.by,
            if completion.announced {
                ""
            } else {
                " (not yet announced)"
            }
        );
    }
    let headers = [
        "stop",
        "buses",
        "in",
        "picked up",
        "forwarded",
        "continued",
        "dropped off",
        "rejected",
        "dead-lettered",
    ];
    let rows: Vec<Vec<String>> = progress
        .stops
        .iter()
        .map(|(stop, t)| {
            let cells = [
                t.buses,
                t.passengers_in,
                t.picked_up,
                t.forwarded,
                t.continued,
                t.dropped_off,
                t.rejected,
                t.dead_lettered,
            ];
            std::iter::once(stop.clone())
                .chain(cells.iter().map(i64::to_string))
                .collect()
        })
        .collect();
    out.push_str(&crate::table::render(&headers, &rows));
    let flows: Vec<Vec<String>> = progress
        .flows
        .iter()
        .map(|(queue, flow)| {
            vec![
                queue.clone(),
                flow.sent.to_string(),
                flow.arrived.to_string(),
                (flow.sent - flow.arrived - flow.in_doubt)
                    .max(0)
                    .to_string(),
                flow.in_doubt.to_string(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&crate::table::render(
        &["queue", "sent", "arrived", "in flight", "in doubt"],
        &flows,
    ));
    for (what, place) in places {
        let _ = writeln!(out, "{what}: {place}");
    }
    out
}
