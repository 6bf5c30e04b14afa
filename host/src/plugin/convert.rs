//! Conversions between the ABI types of `bitstream_sdk::ffi` and the host's
//! own [`crate::model`] types. The only place that maps one onto the other.

use abi_stable::std_types::{ROption, RString, RVec};
use bitstream_sdk::ffi;

use crate::model::{
    ConditionDesc, HandlerOverrides, LogLevel, MachineDesc, ManualEvent, ManualEventSubtype,
    ParamDesc, ParamKind, ParamLocation, PluginError, PluginErrorKind, PulseEvent, RouteDesc,
    RouteRequest, RouteResponse, Severity, StateRef, TransitionDesc, TriggerFailure,
    TriggerFailureKind, TriggerMode,
};

fn strings(list: RVec<RString>) -> Vec<String> {
    list.into_iter().map(String::from).collect()
}

impl From<ffi::MachineDesc> for MachineDesc {
    fn from(desc: ffi::MachineDesc) -> Self {
        MachineDesc {
            states: strings(desc.states),
            triggers: strings(desc.triggers),
            initial: desc.initial.into(),
            transitions: desc.transitions.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ffi::TransitionDesc> for TransitionDesc {
    fn from(t: ffi::TransitionDesc) -> Self {
        TransitionDesc {
            trigger: t.trigger.into(),
            sources: t.sources.into_iter().map(Into::into).collect(),
            dest: t.dest.into(),
            conditions: t
                .conditions
                .into_iter()
                .map(|c| ConditionDesc {
                    label: c.label.into(),
                    id: c.id,
                })
                .collect(),
        }
    }
}

impl From<ffi::StateRef> for StateRef {
    fn from(state: ffi::StateRef) -> Self {
        match state {
            ffi::StateRef::State(name) => StateRef::State(name.into()),
            ffi::StateRef::FromAny => StateRef::FromAny,
            ffi::StateRef::ToSame => StateRef::ToSame,
        }
    }
}

impl From<ffi::RouteDesc> for RouteDesc {
    fn from(route: ffi::RouteDesc) -> Self {
        RouteDesc {
            name: route.name.into(),
            method: route.method.into(),
            summary: route.summary.into(),
            params: route.params.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<ffi::ParamDesc> for ParamDesc {
    fn from(p: ffi::ParamDesc) -> Self {
        ParamDesc {
            name: p.name.into(),
            location: match p.location {
                ffi::ParamLocation::Path => ParamLocation::Path,
                ffi::ParamLocation::Query => ParamLocation::Query,
                ffi::ParamLocation::Body => ParamLocation::Body,
            },
            kind: match p.kind {
                ffi::ParamKind::Bool => ParamKind::Bool,
                ffi::ParamKind::Int => ParamKind::Int,
                ffi::ParamKind::Float => ParamKind::Float,
                ffi::ParamKind::String => ParamKind::String,
                ffi::ParamKind::Json => ParamKind::Json,
            },
            required: p.required,
            default: p.default.into_option(),
            schema: p.schema.into_option(),
        }
    }
}

impl From<ffi::HandlerOverrides> for HandlerOverrides {
    fn from(o: ffi::HandlerOverrides) -> Self {
        HandlerOverrides {
            pulse: o.pulse,
            signal_update: o.signal_update,
            manual_event: o.manual_event,
        }
    }
}

impl From<ffi::PluginError> for PluginError {
    fn from(err: ffi::PluginError) -> Self {
        PluginError {
            kind: match err.kind {
                ffi::PluginErrorKind::Panicked => PluginErrorKind::Panicked,
                ffi::PluginErrorKind::Failed => PluginErrorKind::Failed,
            },
            status: err.status,
            message: err.message.into(),
        }
    }
}

impl From<PluginError> for ffi::PluginError {
    fn from(err: PluginError) -> Self {
        match err.kind {
            PluginErrorKind::Panicked => ffi::PluginError::panicked(err.message),
            PluginErrorKind::Failed => ffi::PluginError::failed(err.status, err.message),
        }
    }
}

impl From<&RouteRequest> for ffi::RouteRequest {
    fn from(request: &RouteRequest) -> Self {
        ffi::RouteRequest {
            path: match &request.path {
                Some(path) => ROption::RSome(RString::from(path.as_str())),
                None => ROption::RNone,
            },
            query: request.query.clone(),
            body: request.body.clone().into(),
        }
    }
}

impl From<ffi::RouteResponse> for RouteResponse {
    fn from(response: ffi::RouteResponse) -> Self {
        RouteResponse {
            status: response.status,
            body: response.body.into_option(),
        }
    }
}

impl From<&PulseEvent> for ffi::PulseEvent {
    fn from(pulse: &PulseEvent) -> Self {
        ffi::PulseEvent {
            sequence: pulse.sequence,
            timestamp_ns: pulse.timestamp_ns,
        }
    }
}

impl From<&ManualEvent> for ffi::ManualEvent {
    fn from(event: &ManualEvent) -> Self {
        ffi::ManualEvent {
            subtype: match event.subtype {
                ManualEventSubtype::General => ffi::ManualEventSubtype::General,
                ManualEventSubtype::Injection => ffi::ManualEventSubtype::Injection,
            },
            severity: match event.severity {
                Severity::General => ffi::Severity::General,
                Severity::Warning => ffi::Severity::Warning,
                Severity::FatalError => ffi::Severity::FatalError,
            },
            value: event.value.clone(),
        }
    }
}

impl From<ffi::ManualEvent> for ManualEvent {
    fn from(event: ffi::ManualEvent) -> Self {
        ManualEvent {
            subtype: match event.subtype {
                ffi::ManualEventSubtype::General => ManualEventSubtype::General,
                ffi::ManualEventSubtype::Injection => ManualEventSubtype::Injection,
            },
            severity: match event.severity {
                ffi::Severity::General => Severity::General,
                ffi::Severity::Warning => Severity::Warning,
                ffi::Severity::FatalError => Severity::FatalError,
            },
            value: event.value,
        }
    }
}

impl From<ffi::TriggerMode> for TriggerMode {
    fn from(mode: ffi::TriggerMode) -> Self {
        match mode {
            ffi::TriggerMode::Trigger => TriggerMode::Trigger,
            ffi::TriggerMode::MayTrigger => TriggerMode::MayTrigger,
            ffi::TriggerMode::IfAllowed => TriggerMode::IfAllowed,
        }
    }
}

impl From<TriggerFailure> for ffi::TriggerFailure {
    fn from(failure: TriggerFailure) -> Self {
        ffi::TriggerFailure {
            kind: match failure.kind {
                TriggerFailureKind::UnknownTrigger => ffi::TriggerFailureKind::UnknownTrigger,
                TriggerFailureKind::NotAllowed => ffi::TriggerFailureKind::NotAllowed,
                TriggerFailureKind::ConditionFailed => ffi::TriggerFailureKind::ConditionFailed,
            },
            message: RString::from(failure.message),
        }
    }
}

impl From<ffi::LogLevel> for LogLevel {
    fn from(level: ffi::LogLevel) -> Self {
        match level {
            ffi::LogLevel::Trace => LogLevel::Trace,
            ffi::LogLevel::Debug => LogLevel::Debug,
            ffi::LogLevel::Info => LogLevel::Info,
            ffi::LogLevel::Warning => LogLevel::Warning,
            ffi::LogLevel::Error => LogLevel::Error,
            ffi::LogLevel::Critical => LogLevel::Critical,
        }
    }
}
