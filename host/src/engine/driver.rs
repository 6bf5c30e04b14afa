//! The driver: a worker's turn on an emulator runs the queue's commands one
//! at a time (pulse batches, propagation, delayed actions, manual events)
//! and finishes what a call deferred.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::block::{Block, BlockCell, CellGuard, Deferred};
use super::events::{EventData, EventKind};
use super::pulse::PulseScratch;
use super::queue::{Command, Sched};
use super::runtime::{Shared, TIME_SLICE};
use super::signal::SignalList;
use super::{CallError, Inner, PulseRun, RunState};
use crate::model::ManualEvent;
use crate::plugin::DelayedCall;

impl Inner {
    /// Locks a block's cell, unless the block is hung or stays busy past
    /// the handler timeout.
    #[inline]
    pub(super) fn lock_cell(&self, block: &Block) -> Result<CellGuard, CallError> {
        if let Some(reason) = block.hung_reason() {
            // The call that hung holds the cell until it returns; a free
            // cell means it has returned (the block recovers here if the
            // return raced with the hang being declared).
            let Some(cell) = block.cell().try_lock_arc() else {
                return Err(CallError::Hung {
                    block: block.id.clone(),
                    reason,
                });
            };
            block.recovered("its handler has returned");
            return Ok(cell);
        }
        if let Some(cell) = block.try_lock_cell() {
            return Ok(cell);
        }
        // Busy: wait for it outside the slot's read lock, so a swap that
        // replaces the cell is never held up by the wait.
        block
            .cell()
            .try_lock_arc_for(self.options.handler_timeout)
            .ok_or_else(|| CallError::Busy {
                block: block.id.clone(),
                timeout_s: self.options.handler_timeout.as_secs_f64(),
            })
    }

    /// One turn of a worker on this emulator (queued for it): runs ready
    /// work, one command at a time, until none is ready or its time slice
    /// is over while other emulators wait; then queues the emulator again
    /// or leaves it idle. Answers `false` when the watchdog handed the
    /// emulator to another worker meanwhile (this one was stuck in a call):
    /// the caller must then leave the emulator alone.
    pub(super) fn run_slice(self: &Arc<Self>, runtime: &Arc<Shared>) -> bool {
        let generation = {
            let mut queue = self.queue.lock();
            queue.sched = Sched::Running;
            self.generation.load(Ordering::Acquire)
        };
        let slice_end = Instant::now() + TIME_SLICE;
        let mut scratch = PulseScratch::default();
        loop {
            let command = {
                let mut queue = self.queue.lock();
                if !self.current(generation) {
                    return false;
                }
                self.take_ready(&mut queue, Instant::now())
            };
            let Some(command) = command else {
                break;
            };
            self.run_command(generation, command, &mut scratch, slice_end, runtime);
            if runtime.others_waiting() && Instant::now() >= slice_end {
                break;
            }
        }
        let mut queue = self.queue.lock();
        if !self.current(generation) {
            return false;
        }
        self.settle(&mut queue);
        true
    }

    fn run_command(
        &self,
        generation: u64,
        command: Command,
        scratch: &mut PulseScratch,
        slice_end: Instant,
        runtime: &Shared,
    ) {
        match command {
            Command::Pulses {
                count,
                done,
                cancel,
                epoch,
                mut ran,
                started,
            } => {
                let started = started.unwrap_or_else(Instant::now);
                let cancelled = || {
                    self.batch_epoch.load(Ordering::Acquire) != epoch
                        || cancel.as_ref().is_some_and(|c| c.load(Ordering::Acquire))
                };
                while ran < count
                    && self.current(generation)
                    && !self.terminating.load(Ordering::Acquire)
                    && !cancelled()
                {
                    self.pulse(generation, scratch);
                    ran += 1;
                    // A swap waits for one pulse, not for the batch.
                    if self.swaps.waiting.load(Ordering::Acquire) > 0 {
                        self.run_waiting_swaps();
                    }
                    if ran < count && runtime.others_waiting() && Instant::now() >= slice_end {
                        // Other emulators wait: the rest of the batch goes
                        // first in line, and this worker takes the next one.
                        let mut queue = self.queue.lock();
                        if queue.run_state != RunState::Terminated {
                            queue.commands.push_front(Command::Pulses {
                                count,
                                done,
                                cancel,
                                epoch,
                                ran,
                                started: Some(started),
                            });
                            return;
                        }
                        break;
                    }
                }
                if let Some(done) = done {
                    let _ = done.send(PulseRun {
                        pulses: ran,
                        elapsed: started.elapsed(),
                        cancelled: ran < count,
                    });
                }
            }
            Command::Propagate { from } => self.propagate(generation, from),
            Command::Delayed {
                block,
                epoch,
                action,
            } => self.run_delayed(generation, block, epoch, action),
            Command::Swap(job) => self.run_swap(job),
            Command::Manual { block, event, .. } => self.deliver_manual(generation, block, event),
        }
    }

    pub(super) fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// Does what a call deferred; answers whether downstream blocks need the
    /// block's new output.
    pub(super) fn finish_call(
        &self,
        block: &Block,
        cell: &mut BlockCell,
        deferred: Vec<Deferred>,
    ) -> bool {
        let mut propagate = false;
        for work in deferred {
            match work {
                Deferred::ForceSignalUpdate => {
                    let input = cell.last_input.clone();
                    cell.last_output = self.run_signal(block, cell, input);
                    propagate = true;
                }
                Deferred::Delay(delay, action) => {
                    self.schedule_delayed(block, cell.epoch, delay, action)
                }
            }
        }
        propagate
    }

    pub(super) fn schedule_delayed(
        &self,
        block: &Block,
        epoch: u64,
        delay: Duration,
        action: DelayedCall,
    ) {
        let command = Command::Delayed {
            block: block.index,
            epoch,
            action,
        };
        if self.schedule(delay, command).is_err() {
            tracing::debug!(block = %block.id, "delayed action discarded: the emulator has terminated");
        }
    }

    /// Re-runs the signal-update handlers downstream of `from` on their
    /// upstream blocks' latest outputs.
    pub(super) fn propagate(&self, generation: u64, from: usize) {
        let generated = self.signal.lock().1.clone();
        for &b in self.chain.downstream_closure(from).iter().skip(1) {
            if !self.current(generation) {
                return;
            }
            let mut parts: Vec<SignalList> = Vec::new();
            if self.chain.is_first(b) {
                parts.push(generated.clone());
            }
            for &u in self.chain.upstream(b) {
                if let Ok(cell) = self.lock_cell(&self.blocks[u]) {
                    parts.push(cell.last_output.clone());
                }
            }
            let block = &self.blocks[b];
            let Ok(mut cell) = self.lock_cell(block) else {
                continue;
            };
            self.enter(b);
            cell.last_input = SignalList::concat(&parts);
            let input = cell.last_input.clone();
            cell.last_output = self.run_signal(block, &mut cell, input);
            self.leave(b);
        }
    }

    pub(super) fn run_delayed(
        &self,
        generation: u64,
        index: usize,
        epoch: u64,
        action: DelayedCall,
    ) {
        let block = &self.blocks[index];
        let mut cell = match self.lock_cell(block) {
            Ok(cell) => cell,
            Err(err) => {
                tracing::error!(block = %block.id, "delayed action dropped: {err}");
                return;
            }
        };
        if cell.epoch != epoch {
            // Scheduled by code a swap replaced: it is not run on the new
            // version's instance (a swap reports how many it dropped).
            tracing::debug!(block = %block.id, "delayed action dropped: the block's plugin was swapped");
            return;
        }
        self.enter(index);
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.run_delayed(host, action)
        });
        self.leave(index);
        if let Err(err) = result {
            tracing::error!(block = %block.id, "delayed action failed: {err}");
        }
        let propagate = self.finish_call(block, &mut cell, deferred);
        drop(cell);
        if propagate {
            self.propagate(generation, index);
        }
    }

    pub(super) fn deliver_manual(&self, generation: u64, index: usize, event: ManualEvent) {
        let block = &self.blocks[index];
        if !self.current(generation) {
            tracing::debug!(block = %block.id, "manual event dropped: its driver was replaced");
            return;
        }
        let mut cell = match self.lock_cell(block) {
            Ok(cell) => cell,
            Err(err) => {
                tracing::error!(block = %block.id, "manual event dropped: {err}");
                return;
            }
        };
        if !cell.plugin.overrides.manual_event {
            tracing::debug!(block = %block.id, "manual event ignored: the block has no manual-event handler");
            return;
        }
        self.events.emit(EventKind::Injection, Some(index), || {
            (
                Some(block.id.clone()),
                EventData::Manual {
                    subtype: event.subtype.as_str().to_owned(),
                    severity: event.severity.as_str().to_owned(),
                    value: event.value.clone().into(),
                },
            )
        });
        self.enter(index);
        let (result, deferred) = block.call(&mut cell, |instance, host| {
            instance.manual_event(host, &event)
        });
        self.leave(index);
        let forwarded = match result {
            Ok(events) => events,
            Err(err) => {
                block.fault(&mut cell, "manual-event handler", &err);
                Vec::new()
            }
        };
        let propagate = self.finish_call(block, &mut cell, deferred);
        drop(cell);
        if propagate {
            self.propagate(generation, index);
        }
        for &d in self.chain.downstream(index) {
            for event in &forwarded {
                self.deliver_manual(generation, d, event.clone());
            }
        }
    }
}
