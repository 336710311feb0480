//! The namespaces of a cluster: pods, workloads, claims and the storage they request.

use crate::app::{NsSummary, Row, Tone};
use crate::format;

pub fn rows(list: &[NsSummary]) -> Vec<Row> {
    list.iter()
        .map(|n| {
            Row::new(
                n.name.clone(),
                vec![
                    n.name.clone(),
                    n.status.clone(),
                    n.workloads.to_string(),
                    n.pods.to_string(),
                    n.pvcs.to_string(),
                    if n.requested == 0 {
                        "-".into()
                    } else {
                        format::bytes(n.requested)
                    },
                ],
            )
            .tone(if n.status == "Terminating" {
                Tone::Warn
            } else {
                Tone::Normal
            })
        })
        .collect()
}
