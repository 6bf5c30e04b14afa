//! The driver's step of a swap: every block of the type held, each new
//! instance, state and buffer prepared, then all committed, or none.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use bitstream_sdk::Value;

use super::carry::carry;
use super::{BlockSwap, Committed, SwapError, SwapJob, COMMITTING, PENDING, TAKEN};
use crate::engine::block::{BlockCell, CellGuard};
use crate::engine::block_buffer::BlockBuffer;
use crate::engine::queue::Command;
use crate::engine::Inner;
use crate::fsm::StateId;
use crate::model::PluginError;
use crate::plugin::{BlockInstance, Plugin};

/// A block's device buffer across the swap.
enum BufferPlan {
    /// The type is unchanged: the same segment.
    Keep,
    /// The type changed: this successor (or none, when the new version
    /// ships no catalog) replaces it when the swap commits.
    Replace(Option<Arc<BlockBuffer>>),
}

/// One block, ready to commit.
struct Prepared {
    instance: BlockInstance,
    state: StateId,
    buffer: BufferPlan,
    swap: BlockSwap,
}

/// What the commit replaced, dropped after the reload has its answer (a
/// plugin's drop is plugin code).
#[derive(Default)]
struct Replaced {
    instances: Vec<BlockInstance>,
    buffers: Vec<Arc<BlockBuffer>>,
}

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
        let mut replaced = Replaced::default();
        let result = self.swap_blocks(&job, &mut replaced);
        let _ = job.reply.send(result);
        drop(replaced);
    }

    fn swap_blocks(&self, job: &SwapJob, replaced: &mut Replaced) -> Result<Committed, SwapError> {
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
        let mut prepared: Vec<Prepared> = Vec::new();
        for (slot, &i) in held.iter_mut().zip(&indices) {
            prepared.push(self.prepare_block(job, i, slot.as_deref_mut())?);
        }
        // The reload may have given up waiting: then nothing is committed.
        if job
            .state
            .compare_exchange(TAKEN, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(SwapError::StepTimeout {
                timeout_s: 0.0, // nobody reads it: the reload has answered
            });
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
        for ((slot, &i), prepared) in held.iter_mut().zip(&indices).zip(prepared) {
            let Prepared {
                instance,
                state,
                buffer,
                mut swap,
            } = prepared;
            let block = &self.blocks[i];
            let epoch = block.epoch() + 1;
            let buffer = match buffer {
                BufferPlan::Keep => block.buffer(),
                BufferPlan::Replace(next) => {
                    let old = block.buffer();
                    swap.buffer = Some(commit_buffer(old.as_deref(), next.as_deref()));
                    block.set_buffer(next.clone());
                    replaced.buffers.extend(old);
                    next
                }
            };
            match slot {
                Some(cell) => {
                    replaced
                        .instances
                        .push(std::mem::replace(&mut cell.instance, instance));
                    cell.plugin = new.clone();
                    cell.state = state;
                    cell.epoch = epoch;
                    cell.buffer = buffer;
                }
                None => {
                    let mut cell = BlockCell::new(new.clone(), epoch, instance, buffer);
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
    ) -> Result<Prepared, SwapError> {
        let block = &self.blocks[i];
        let new = &job.plugin;
        let failed = |what: &'static str| {
            move |e: PluginError| SwapError::Restore {
                block: block.id.clone(),
                what,
                message: e.to_string(),
            }
        };
        let buffer = self.plan_buffer(i, new)?;
        let initial = new.machine.initial();
        let initial_name = new.machine.state_name(initial).to_owned();
        let fresh = || {
            let mut instance = new.components.create_block().map_err(failed("construct"))?;
            instance
                .apply_constants(&self.config.ip_blocks[i].constants)
                .map_err(failed("constants"))?;
            Ok::<_, SwapError>(instance)
        };
        let swap = |state: String, how: &'static str| BlockSwap {
            block: block.id.clone(),
            state,
            how,
            buffer: None,
        };
        let Some(cell) = cell else {
            return Ok(Prepared {
                instance: fresh()?,
                state: initial,
                buffer,
                swap: swap(format!("(hung) -> {initial_name}"), "reset-hung"),
            });
        };
        let old_state = cell.plugin.machine.state_name(cell.state).to_owned();
        if block.fault_reason().is_some() {
            return Ok(Prepared {
                instance: fresh()?,
                state: initial,
                buffer,
                swap: swap(format!("{old_state} -> {initial_name}"), "reset-faulted"),
            });
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
        let instance = self.restore_bounded(i, new, snapshot, &job.from_version)?;
        Ok(Prepared {
            instance,
            state,
            buffer,
            swap: swap(
                format!("{old_state} -> {}", new.machine.state_name(state)),
                how,
            ),
        })
    }

    /// The buffer block `i` gets from `new`: its own when the type is
    /// unchanged, else a successor (not yet the block's).
    fn plan_buffer(&self, i: usize, new: &Plugin) -> Result<BufferPlan, SwapError> {
        let block = &self.blocks[i];
        let old = block.buffer();
        let old_type = old.as_ref().map(|b| b.buffer().buffer_type());
        let new_type = new.catalog.as_ref().map(|c| &c.buffer_type);
        let same = match (old_type, new_type) {
            (None, None) => true,
            (Some(a), Some(b)) => a.name() == b.name() && a.hash() == b.hash(),
            _ => false,
        };
        if same {
            return Ok(BufferPlan::Keep);
        }
        let Some(ty) = new_type else {
            return Ok(BufferPlan::Replace(None));
        };
        let next =
            BlockBuffer::create_successor(ty, self.options.buffers, &self.options.id, &block.id)
                .map_err(|e| SwapError::Buffer {
                    block: block.id.clone(),
                    buffer_type: ty.name().to_owned(),
                    message: e.to_string(),
                })?;
        Ok(BufferPlan::Replace(Some(Arc::new(next))))
    }

    /// A new instance of `new` restored from `snapshot`, made on a thread
    /// of its own: a restore that does not return within the handler
    /// timeout refuses the swap (the old version serves on) and its thread
    /// is left behind and counted.
    fn restore_bounded(
        &self,
        i: usize,
        new: &Arc<Plugin>,
        snapshot: Value,
        from_version: &str,
    ) -> Result<BlockInstance, SwapError> {
        let block = &self.blocks[i];
        let (reply, answer) = mpsc::sync_channel(1);
        let (plugin, from) = (new.clone(), from_version.to_owned());
        let spawned = std::thread::Builder::new()
            .name(format!("swap-restore-{}", block.id))
            .spawn(move || {
                let restored = plugin
                    .components
                    .create_block()
                    .map_err(|e| ("construct", e))
                    .and_then(|mut instance| match instance.restore(&snapshot, &from) {
                        Ok(_) => Ok(instance),
                        Err(e) => Err(("restore", e)),
                    });
                let _ = reply.send(restored);
            });
        if let Err(e) = spawned {
            return Err(SwapError::Restore {
                block: block.id.clone(),
                what: "restore",
                message: format!("cannot start its thread: {e}"),
            });
        }
        let timeout = self.options.handler_timeout;
        match answer.recv_timeout(timeout) {
            Ok(Ok(instance)) => Ok(instance),
            Ok(Err((what, e))) => Err(SwapError::Restore {
                block: block.id.clone(),
                what,
                message: e.to_string(),
            }),
            Err(_) => {
                self.swaps.stuck_threads.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    block = %block.id,
                    "the restore of {} did not return within the handler timeout ({} s); its thread is left behind",
                    new.library.plugin_version(),
                    timeout.as_secs_f64()
                );
                Err(SwapError::Hung {
                    block: block.id.clone(),
                    what: "restore",
                    timeout_s: timeout.as_secs_f64(),
                })
            }
        }
    }
}

/// How long the commit waits for an old buffer's lock (a hung block or
/// another process may hold it; the values are then not carried).
const OLD_BUFFER_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Moves the values of `old` to `next` (under `old`'s lock, so no other
/// process writes between the copy and the hand-over) and gives `next` the
/// block's name; `old` is released.
fn commit_buffer(
    old: Option<&BlockBuffer>,
    next: Option<&BlockBuffer>,
) -> super::carry::BufferCarry {
    let lock = old.map(|o| o.buffer().segment().lock_timeout(OLD_BUFFER_LOCK_WAIT));
    let unreadable = match &lock {
        Some(Ok(None)) => Some(format!(
            "the old buffer's lock stayed held for {} ms (a hung block or another process)",
            OLD_BUFFER_LOCK_WAIT.as_millis()
        )),
        Some(Err(e)) => Some(format!("the old buffer cannot be locked: {e}")),
        _ => None,
    };
    let mut report = carry(
        old.map(BlockBuffer::buffer),
        next.map(BlockBuffer::buffer),
        unreadable.as_deref(),
    );
    match (next, old) {
        (Some(next), old) => next.take_over(old),
        (None, Some(old)) => old.release(),
        (None, None) => {}
    }
    drop(lock);
    report.shared_memory = next.and_then(BlockBuffer::shm_name);
    report
}
