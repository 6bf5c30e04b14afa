//! Real state machines of the VCC blocks, shared by the unit tests.
