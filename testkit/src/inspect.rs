//! What a test reads from a [`Harness`]: captured logs, the device buffer
//! and what the plugin declares.

use bitstream_buffer::device::Buffer;
use bitstream_host::engine::block_buffer::BlockBuffer;
use bitstream_host::model::{HandlerOverrides, LogLevel, MachineDesc, RouteDesc};

use crate::{Harness, LogLine};

impl<B> Harness<B> {
    // -- logs and buffer ----------------------------------------------------

    /// Every line logged so far: by plugin code (`ctx.log*`, and the `log`
    /// crate inside the plugin), and by the host about the block (a fault,
    /// a failed condition, a failed delayed action).
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("on", serde_json::json!({"brightness": 2}));
    /// assert_eq!(h.logs()[0].message, "on at 2");
    /// ```
    pub fn logs(&self) -> Vec<LogLine> {
        self.records.logs.borrow().clone()
    }

    /// The messages logged at `level`, in order.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// use bitstream_sdk::{LogLevel, ManualEvent, Severity};
    /// let mut h = Harness::<Lamp>::new();
    /// h.inject(ManualEvent::injection(Severity::FatalError, serde_json::json!({})));
    /// assert_eq!(h.logged(LogLevel::Warning), ["fatal event: faulting"]);
    /// ```
    pub fn logged(&self, level: impl Into<LogLevel>) -> Vec<String> {
        let level = level.into();
        self.records
            .logs
            .borrow()
            .iter()
            .filter(|l| l.level == level)
            .map(|l| l.message.clone())
            .collect()
    }

    /// Forgets the log lines captured so far.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let mut h = Harness::<Lamp>::new();
    /// h.post("on", serde_json::json!({"brightness": 2}));
    /// h.clear_logs();
    /// assert!(h.logs().is_empty());
    /// ```
    pub fn clear_logs(&mut self) {
        self.records.logs.borrow_mut().clear();
    }

    /// The block's device buffer (in process memory), when its plugin
    /// declares a catalog; `None` otherwise.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert!(h.try_buffer().is_some());
    /// ```
    pub fn try_buffer(&self) -> Option<&Buffer> {
        self.buffer.as_ref().map(BlockBuffer::buffer)
    }

    /// The block's device buffer; panics when its plugin declares no
    /// catalog.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// h.buffer().set("hours", 5u64).unwrap();
    /// assert_eq!(h.buffer().get("hours").unwrap().to_json(), serde_json::json!(5));
    /// ```
    #[track_caller]
    pub fn buffer(&self) -> &Buffer {
        self.try_buffer().unwrap_or_else(|| {
            panic!("the block has no device buffer: its plugin declares no catalog")
        })
    }

    // -- what the plugin declares -------------------------------------------

    /// The state machine as the host sees it.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert_eq!(h.machine().states, ["OFF", "ON", "FAULT"]);
    /// ```
    pub fn machine(&self) -> &MachineDesc {
        self.machine.desc()
    }

    /// The routes as the host sees them, in declaration order.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert_eq!(h.routes()[0].name, "on");
    /// ```
    pub fn routes(&self) -> Vec<RouteDesc> {
        self.routes.iter().map(|r| r.desc().clone()).collect()
    }

    /// Which event handlers the plugin defines.
    ///
    /// ```
    /// # use bitstream_testkit::{example::Lamp, Harness};
    /// let h = Harness::<Lamp>::new();
    /// assert!(h.overrides().pulse && h.overrides().signal_update && h.overrides().manual_event);
    /// ```
    pub fn overrides(&self) -> HandlerOverrides {
        self.overrides
    }
}
