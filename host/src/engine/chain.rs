//! The signal chain: the blocks as a petgraph graph, and the deterministic
//! order in which a pulse visits them.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::config::BitstreamConfig;

/// The blocks (by index in config order) and their edges.
#[derive(Debug, Clone)]
pub struct SignalChain {
    graph: DiGraph<usize, ()>,
    /// Every block, upstream before downstream; among blocks whose
    /// upstreams are all done, config order.
    order: Vec<usize>,
    /// Per block: its upstream blocks, in config order.
    upstream: Vec<Vec<usize>>,
    /// Per block: its downstream blocks, in the order the config lists them.
    downstream: Vec<Vec<usize>>,
    /// Per block: whether it receives the generated signal.
    first: Vec<bool>,
}

impl SignalChain {
    /// Builds the chain of a config that passed its checks (ids unique,
    /// references resolved, no cycle).
    pub fn new(config: &BitstreamConfig) -> Self {
        let n = config.ip_blocks.len();
        let index_of = |id: &str| config.ip_blocks.iter().position(|b| b.id == id);
        let mut graph = DiGraph::with_capacity(n, n);
        let nodes: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        let mut downstream = vec![Vec::new(); n];
        for (i, block) in config.ip_blocks.iter().enumerate() {
            for id in &block.downstream_block_ids {
                if let Some(j) = index_of(id) {
                    if !downstream[i].contains(&j) {
                        downstream[i].push(j);
                        graph.add_edge(nodes[i], nodes[j], ());
                    }
                }
            }
        }
        let upstream: Vec<Vec<usize>> = (0..n)
            .map(|j| {
                let mut ups: Vec<usize> = graph
                    .neighbors_directed(nodes[j], Direction::Incoming)
                    .map(|node| graph[node])
                    .collect();
                ups.sort_unstable();
                ups
            })
            .collect();
        let mut first = vec![false; n];
        for id in &config.first {
            if let Some(i) = index_of(id) {
                first[i] = true;
            }
        }
        let order = deterministic_topological_order(&upstream, &downstream);
        SignalChain {
            graph,
            order,
            upstream,
            downstream,
            first,
        }
    }

    /// The graph (node weights are block indexes).
    pub fn graph(&self) -> &DiGraph<usize, ()> {
        &self.graph
    }

    /// The order a pulse visits the blocks in.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// The upstream blocks of `block`, in config order.
    pub fn upstream(&self, block: usize) -> &[usize] {
        &self.upstream[block]
    }

    /// The downstream blocks of `block`.
    pub fn downstream(&self, block: usize) -> &[usize] {
        &self.downstream[block]
    }

    /// Whether `block` receives the generated signal.
    pub fn is_first(&self, block: usize) -> bool {
        self.first[block]
    }

    /// `block` and every block downstream of it, in pulse order.
    pub fn downstream_closure(&self, block: usize) -> Vec<usize> {
        let mut reached = vec![false; self.order.len()];
        reached[block] = true;
        let mut out = Vec::new();
        for &b in &self.order {
            if reached[b] {
                out.push(b);
                for &d in &self.downstream[b] {
                    reached[d] = true;
                }
            }
        }
        out
    }
}

/// Kahn's algorithm taking, at each step, the lowest config index among the
/// ready blocks, so the order never depends on hashing or edge order.
fn deterministic_topological_order(
    upstream: &[Vec<usize>],
    downstream: &[Vec<usize>],
) -> Vec<usize> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut waiting: Vec<usize> = upstream.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..upstream.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(upstream.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &d in &downstream[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn chain(text: &str) -> (BitstreamConfig, SignalChain) {
        let (config, report) =
            crate::config::check_config_text(Path::new("config.json"), text, None);
        let config = config.unwrap_or_else(|| panic!("{report:#?}"));
        let chain = SignalChain::new(&config);
        (config, chain)
    }

    fn ids(config: &BitstreamConfig, blocks: &[usize]) -> Vec<String> {
        blocks
            .iter()
            .map(|&i| config.ip_blocks[i].id.clone())
            .collect()
    }

    #[test]
    fn real_config_order_has_upstream_first() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/vcc_processing/emulators/config.json"
        ))
        .unwrap();
        let (config, chain) = chain(&text);
        assert_eq!(chain.order().len(), 36);
        let position = |b: usize| chain.order().iter().position(|&x| x == b).unwrap();
        for b in 0..36 {
            for &d in chain.downstream(b) {
                assert!(position(b) < position(d));
            }
        }
        let order = ids(&config, chain.order());
        assert_eq!(
            &order[..3],
            [
                "ethernet_200g",
                "packet_validation",
                "wideband_input_buffer"
            ]
        );
        assert_eq!(chain.graph().edge_count(), 60);
        let packetizer = config
            .ip_blocks
            .iter()
            .position(|b| b.id == "packetizer")
            .unwrap();
        assert_eq!(chain.upstream(packetizer).len(), 26, "26-way fan-in");
    }

    #[test]
    fn ties_follow_config_order() {
        let (config, chain) = chain(
            r#"{"id": "t", "version": "0.0.1", "first": ["src"], "ip_blocks": [
                {"id": "src", "type": "x", "downstream_block_ids": ["z", "a"]},
                {"id": "z", "type": "x", "downstream_block_ids": ["sink"]},
                {"id": "a", "type": "x", "downstream_block_ids": ["sink"]},
                {"id": "sink", "type": "x"}]}"#,
        );
        assert_eq!(ids(&config, chain.order()), ["src", "z", "a", "sink"]);
        assert_eq!(ids(&config, chain.upstream(3)), ["z", "a"]);
        assert_eq!(ids(&config, &chain.downstream_closure(1)), ["z", "sink"]);
    }
}
