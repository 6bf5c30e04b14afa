//! The driver's step of a swap: every block of the type held, each new
//! instance and state prepared, then all committed, or none.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bitstream_sdk::Value;

use super::{BlockSwap, Committed, SwapError, SwapJob, PENDING, TAKEN};
use crate::engine::block::{BlockCell, CellGuard};
use crate::engine::queue::Command;
use crate::engine::Inner;
use crate::fsm::StateId;
use crate::plugin::BlockInstance;

impl Inner {
    pub(super) fn push_swap(&self, job: SwapJob) -> Result<(), SwapError> {
        let mut queue = self.queue.lock();
        if queue.run_state == crate::engine::RunState::Terminated {
            return Err(SwapError::Terminated);
        }
        // First in line: a swap waits for no queued work.
        queue.commands.push_front(Command::Swap(Box::new(job)));
        self.swaps.waiting.fetch_add(1, Ordering::AcqRel);
        self.kick(&mut queue);
        Ok(())
    }

    /// Runs the swaps queued at the front (between two pulses of a batch).
    pub(in crate::engine) fn run_waiting_swaps(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock();
                match queue.commands.front() {
                    Some(Command::Swap(_)) => match queue.commands.pop_front() {
                        Some(Command::Swap(job)) => job,
                        _ => unreachable!("just peeked"),
                    },
                    _ => return,
                }
            };
            self.run_swap(job);
        }
    }

    /// The driver's step: swap every block of the type, or none.
    pub(in crate::engine) fn run_swap(&self, job: Box<SwapJob>) {
        self.swaps.waiting.fetch_sub(1, Ordering::AcqRel);
        if job
            .state
            .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return; // the reload gave up waiting; it reported that
        }
        let result = self.swap_blocks(&job);
        let _ = job.reply.send(result);
    }

    fn swap_blocks(&self, job: &SwapJob) -> Result<Committed, SwapError> {
        let started = Instant::now();
        let new = &job.plugin;
        let indices: Vec<usize> = self
            .config
            .ip_blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.block_type == job.ip_block_type)
            .map(|(i, _)| i)
            .collect();

        // Hold every block of the type (a hung one cannot be held: it is
        // replaced whole).
        let mut held: Vec<Option<CellGuard>> = Vec::with_capacity(indices.len());
        for &i in &indices {
            let block = &self.blocks[i];
            if block.hung_reason().is_some() {
                held.push(None);
                continue;
            }
            let guard = block
                .cell()
                .try_lock_arc_for(self.options.handler_timeout)
                .ok_or_else(|| SwapError::Busy {
                    block: block.id.clone(),
                })?;
            held.push(Some(guard));
        }

        // Prepare each block's new instance and state; nothing changes yet.
        let mut prepared: Vec<(BlockInstance, StateId, BlockSwap)> = Vec::new();
        for (slot, &i) in held.iter_mut().zip(&indices) {
            prepared.push(self.prepare_block(job, i, slot.as_deref_mut())?);
        }

        // Commit all of them.
        let mut delayed_dropped = 0;
        let mut injections_kept = 0;
        {
            let queue = self.queue.lock();
            for timer in queue.timers.iter() {
                match &timer.command {
                    Command::Delayed { block, .. } if indices.contains(block) => {
                        delayed_dropped += 1
                    }
                    Command::Manual { block, .. } if indices.contains(block) => {
                        injections_kept += 1
                    }
                    _ => {}
                }
            }
        }
        let mut stuck = 0;
        let mut blocks = Vec::with_capacity(indices.len());
        let mut old_instances = Vec::with_capacity(indices.len());
        for ((slot, &i), (instance, state, swap)) in held.iter_mut().zip(&indices).zip(prepared) {
            let block = &self.blocks[i];
            let epoch = block.epoch() + 1;
            match slot {
                Some(cell) => {
                    old_instances.push(std::mem::replace(&mut cell.instance, instance));
                    cell.plugin = new.clone();
                    cell.state = state;
                    cell.epoch = epoch;
                }
                None => {
                    let mut cell = BlockCell::new(new.clone(), epoch, instance);
                    cell.state = state;
                    block.replace_cell(cell);
                    stuck += 1;
                }
            }
            block.clear_fault();
            block.set_plugin(new.clone(), epoch);
            blocks.push(swap);
        }
        {
            let mut plugins = self.plugins.write();
            if let Some(p) = plugins
                .iter_mut()
                .find(|p| p.ip_block_type == job.ip_block_type)
            {
                *p = new.clone();
            }
        }
        let held_for = started.elapsed();
        drop(held);
        drop(old_instances);
        self.swaps
            .stuck_threads
            .fetch_add(stuck as u64, Ordering::Relaxed);
        Ok(Committed {
            blocks,
            delayed_dropped,
            injections_kept,
            stuck,
            held: held_for,
        })
    }

    /// The new instance and state of block `i` (`cell`: its held cell, or
    /// `None` when it is hung).
    fn prepare_block(
        &self,
        job: &SwapJob,
        i: usize,
        cell: Option<&mut BlockCell>,
    ) -> Result<(BlockInstance, StateId, BlockSwap), SwapError> {
        let block = &self.blocks[i];
        let new = &job.plugin;
        let failed = |what: &'static str| {
            move |e: crate::model::PluginError| SwapError::Restore {
                block: block.id.clone(),
                what,
                message: e.to_string(),
            }
        };
        let initial = new.machine.initial();
        let initial_name = new.machine.state_name(initial).to_owned();
        let fresh = || {
            let mut instance = new.components.create_block().map_err(failed("construct"))?;
            instance
                .apply_constants(&self.config.ip_blocks[i].constants)
                .map_err(failed("constants"))?;
            Ok::<_, SwapError>(instance)
        };
        let reset = |how: &'static str, from: &str| {
            Ok((
                fresh()?,
                initial,
                BlockSwap {
                    block: block.id.clone(),
                    state: format!("{from} -> {initial_name}"),
                    how,
                },
            ))
        };
        let Some(cell) = cell else {
            return reset("reset-hung", "(hung)");
        };
        let old_state = cell.plugin.machine.state_name(cell.state).to_owned();
        if block.fault_reason().is_some() {
            return reset("reset-faulted", &old_state);
        }
        let (state, how) = match new.machine.state_id(&old_state) {
            Some(state) => (state, "carried"),
            None if job.reset => (initial, "reset-state"),
            None => {
                return Err(SwapError::StateMissing {
                    ip_block_type: job.ip_block_type.clone(),
                    block: block.id.clone(),
                    state: old_state,
                    states: new
                        .machine
                        .states()
                        .map(|(_, n)| n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        self.enter(i);
        let snapshot: Result<Value, _> = cell.instance.snapshot();
        self.leave(i);
        let snapshot = snapshot.map_err(failed("snapshot"))?;
        let mut instance = new.components.create_block().map_err(failed("construct"))?;
        self.enter(i);
        let restored = instance.restore(&snapshot, &job.from_version);
        self.leave(i);
        restored.map_err(failed("restore"))?;
        Ok((
            instance,
            state,
            BlockSwap {
                block: block.id.clone(),
                state: format!("{old_state} -> {}", new.machine.state_name(state)),
                how,
            },
        ))
    }
}
