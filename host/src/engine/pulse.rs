//! One pulse through the signal chain: each block, upstream first, gets
//! its input list, runs its signal-update handler, then its pulse handler.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use parking_lot::Mutex;

use super::block::{Block, BlockCell, Deferred};
use super::signal::SignalList;
use super::Inner;
use crate::model::PulseEvent;

/// What a driver keeps from one pulse to the next of a turn: each block's
/// output in the pulse under way, and its cached cell slot.
#[derive(Default)]
pub(super) struct PulseScratch {
    outputs: Vec<Option<SignalList>>,
    cells: Vec<Option<(u64, Arc<Mutex<BlockCell>>)>>,
}

impl PulseScratch {
    /// Sized for `blocks`, every output cleared.
    fn prepare(&mut self, blocks: usize) {
        if self.cells.len() != blocks {
            self.cells = vec![None; blocks];
            self.outputs = vec![None; blocks];
        }
        self.outputs.iter_mut().for_each(|o| *o = None);
    }
}

impl Inner {
    /// One pulse through the whole chain.
    pub(super) fn pulse(&self, generation: u64, scratch: &mut PulseScratch) {
        let sequence = self.pulses.fetch_add(1, Ordering::Relaxed);
        let timestamp_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let event = PulseEvent {
            sequence,
            timestamp_ns,
        };
        let generated = self.signal.lock().1.clone();
        scratch.prepare(self.blocks.len());
        let PulseScratch { outputs, cells } = scratch;
        for &b in self.chain.order() {
            if !self.current(generation) {
                return;
            }
            let input = self.input_of(b, outputs, &generated);
            let block = &self.blocks[b];
            let output = match block.try_lock_cached(&mut cells[b]) {
                Some(mut cell) => self.pulse_block(b, block, &mut cell, input, &event),
                None => match self.lock_cell(block) {
                    Ok(mut cell) => self.pulse_block(b, block, &mut cell, input, &event),
                    Err(err) => {
                        tracing::warn!(block = %block.id, "skipped in pulse {sequence}: {err}");
                        SignalList::default()
                    }
                },
            };
            outputs[b] = Some(output);
        }
    }

    #[inline]
    fn pulse_block(
        &self,
        b: usize,
        block: &Block,
        cell: &mut BlockCell,
        input: SignalList,
        event: &PulseEvent,
    ) -> SignalList {
        self.enter(b);
        let output = self.signal_then_pulse(block, cell, input, event);
        self.leave(b);
        output
    }

    /// What block `b` receives: the generated signal (for `first` blocks)
    /// then each upstream block's output, in config order.
    pub(super) fn input_of(
        &self,
        b: usize,
        outputs: &[Option<SignalList>],
        generated: &SignalList,
    ) -> SignalList {
        let upstream = self.chain.upstream(b);
        let first = self.chain.is_first(b);
        let empty = SignalList::default();
        let upstream_output = |u: usize| outputs[u].as_ref().unwrap_or(&empty);
        match (first, upstream) {
            (true, []) => generated.clone(),
            (false, [only]) => upstream_output(*only).clone(),
            _ => {
                let generated = first.then_some(generated);
                SignalList::concat(
                    generated
                        .into_iter()
                        .chain(upstream.iter().map(|&u| upstream_output(u))),
                )
            }
        }
    }

    pub(super) fn signal_then_pulse(
        &self,
        block: &Block,
        cell: &mut BlockCell,
        input: SignalList,
        event: &PulseEvent,
    ) -> SignalList {
        cell.last_input = input.clone();
        cell.last_output = self.run_signal(block, cell, input);
        if cell.plugin.overrides.pulse {
            let (result, deferred) = block.call(cell, |instance, host| instance.pulse(host, event));
            if let Err(err) = result {
                block.fault(cell, "pulse handler", &err);
            }
            // Downstream blocks have not run yet in this pulse: a forced
            // update just replaces this block's output.
            self.finish_call(block, cell, deferred);
        }
        cell.last_output.clone()
    }

    /// Runs the signal-update handler (or passes the list through).
    pub(super) fn run_signal(
        &self,
        block: &Block,
        cell: &mut BlockCell,
        input: SignalList,
    ) -> SignalList {
        if !cell.plugin.overrides.signal_update {
            return input;
        }
        let owned = input.to_vec();
        let (result, deferred) =
            block.call(cell, |instance, host| instance.signal_update(host, owned));
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => {
                    tracing::debug!(block = %block.id, "force_signal_update inside a signal-update handler is ignored")
                }
                Deferred::Delay(delay, action) => {
                    self.schedule_delayed(block, cell.epoch, delay, action)
                }
            }
        }
        match result {
            Ok(list) => SignalList::from_values(list),
            Err(err) => {
                block.fault(cell, "signal-update handler", &err);
                input
            }
        }
    }
}
