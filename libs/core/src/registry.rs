//! The registry of stop kinds: each kind's name maps to an async factory that builds the stop
//! at init from an [`InitContext`]. Every host (Lambda, `bus ride`, `bus bench`, the tests)
//! builds stops here, and a built-in kind registers exactly as a user's kind does.

use crate::config::{StopConfig, Vars};
use crate::depot::{Depot, TripStarter};
use crate::error::{ConfigError, InitError};
use crate::processor::BatchProcessor;
use crate::runtime::{Ports, StopRuntime};
use crate::stop::{EachPassenger, PassengerStop, Stop};
use futures::future::BoxFuture;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

/// Typed values a host offers to the stops it builds: the loaded AWS `SdkConfig` on Lambda and
/// on an emulator, whatever the embedded host has. A stop takes what it needs by type.
#[derive(Clone, Default)]
pub struct Extensions(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl Extensions {
    /// Offers `value`, replacing any value of the same type.
    pub fn insert<T: Any + Send + Sync>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if the host offers one.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// What a stop's factory receives at init.
pub struct InitContext {
    kind: String,
    settings: Arc<dyn Vars>,
    config: StopConfig,
    ports: Ports,
    extensions: Extensions,
}

impl InitContext {
    /// The kind being built.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The settings every stop shares (name, route, queues, budget).
    pub fn config(&self) -> &StopConfig {
        &self.config
    }

    /// All of the stop's settings: the function's environment variables.
    pub fn settings(&self) -> &dyn Vars {
        self.settings.as_ref()
    }

    /// A required setting; the error names the variable.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        crate::config::required(self.settings(), name)
    }

    /// An optional setting; empty counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        crate::config::optional(self.settings(), name)
    }

    /// An optional setting parsed as `T`, or `default` when unset; the error names the variable.
    pub fn parsed<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        crate::config::parsed(self.settings(), name, default)
    }

    /// The host's ports (queues, the data bucket, metrics).
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// What the host offers of type `T`, if anything.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// What the host offers of type `T`; an error naming the kind and the type when it does
    /// not (e.g. an AWS client asked of a host with no AWS configuration).
    pub fn require<T: Any + Send + Sync>(&self) -> Result<&T, InitError> {
        self.extension::<T>().ok_or_else(|| InitError::Missing {
            kind: self.kind.clone(),
            needs: std::any::type_name::<T>().to_owned(),
        })
    }
}

/// What a factory builds: a stop that handles buses from its queue, or a depot.
enum Built {
    /// Handles buses from its queue.
    Stop(Arc<dyn Stop>),
    /// Starts trips.
    Depot(Arc<dyn Depot>),
}

/// A stop built and ready to run with its ports.
pub enum ReadyStop {
    /// Handles batches from its queue.
    Bus(BatchProcessor),
    /// Starts trips.
    Depot(TripStarter),
}

impl ReadyStop {
    /// The batch processor, or an error naming the kind when it is a depot.
    pub fn into_bus(self, kind: &str) -> Result<BatchProcessor, InitError> {
        match self {
            ReadyStop::Bus(processor) => Ok(processor),
            ReadyStop::Depot(_) => Err(InitError::WrongPart {
                kind: kind.to_owned(),
                found: "is a depot (it starts trips)",
                wanted: "a stop reading a queue is needed",
            }),
        }
    }

    /// The trip starter, or an error naming the kind when it reads a queue.
    pub fn into_depot(self, kind: &str) -> Result<TripStarter, InitError> {
        match self {
            ReadyStop::Depot(starter) => Ok(starter),
            ReadyStop::Bus(_) => Err(InitError::WrongPart {
                kind: kind.to_owned(),
                found: "reads a queue",
                wanted: "a depot is needed to start the trip",
            }),
        }
    }
}

type Factory =
    Arc<dyn Fn(InitContext) -> BoxFuture<'static, Result<Built, InitError>> + Send + Sync>;

/// One stop kind: its name (the template's `BuildProperties.Binary`) and its factory.
#[derive(Clone)]
pub struct StopKind {
    name: String,
    reads_queue: bool,
    factory: Factory,
}

impl StopKind {
    /// A kind whose factory builds a [`Stop`] (a bus at a time).
    pub fn stop<F, Fut, S>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(InitContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, InitError>> + Send + 'static,
        S: Stop + 'static,
    {
        Self::building(name, true, factory, |stop| Built::Stop(Arc::new(stop)))
    }

    /// A kind whose factory builds a [`PassengerStop`] (a passenger at a time).
    pub fn each_passenger<F, Fut, P>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(InitContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P, InitError>> + Send + 'static,
        P: PassengerStop + 'static,
    {
        Self::building(name, true, factory, |stop| {
            Built::Stop(Arc::new(EachPassenger(stop)))
        })
    }

    /// A kind whose factory builds a [`Depot`].
    pub fn depot<F, Fut, D>(name: impl Into<String>, factory: F) -> Self
    where
        F: Fn(InitContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, InitError>> + Send + 'static,
        D: Depot + 'static,
    {
        Self::building(name, false, factory, |depot| Built::Depot(Arc::new(depot)))
    }

    /// A kind whose factory's result becomes a [`Built`] through `into`.
    fn building<F, Fut, T>(
        name: impl Into<String>,
        reads_queue: bool,
        factory: F,
        into: fn(T) -> Built,
    ) -> Self
    where
        F: Fn(InitContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, InitError>> + Send + 'static,
        T: 'static,
    {
        Self::from_factory(name, reads_queue, move |init| {
            let built = factory(init);
            async move { built.await.map(into) }
        })
    }

    fn from_factory<F, Fut>(name: impl Into<String>, reads_queue: bool, factory: F) -> Self
    where
        F: Fn(InitContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Built, InitError>> + Send + 'static,
    {
        StopKind {
            name: name.into(),
            reads_queue,
            factory: Arc::new(move |init| Box::pin(factory(init))),
        }
    }

    /// The same kind with every stop it builds passed through `wrap` (to add logging, fault
    /// injection or checks around a kind without touching it). Depots are left as they are.
    pub fn wrapped(
        self,
        wrap: impl Fn(Arc<dyn Stop>) -> Arc<dyn Stop> + Send + Sync + 'static,
    ) -> Self {
        let inner = self.factory;
        let wrap = Arc::new(wrap);
        Self::from_factory(self.name, self.reads_queue, move |init| {
            let built = inner(init);
            let wrap = wrap.clone();
            async move {
                Ok(match built.await? {
                    Built::Stop(stop) => Built::Stop(wrap(stop)),
                    depot => depot,
                })
            }
        })
    }

    /// The kind's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a kind that reads a queue (built by [`StopKind::stop`] or
    /// [`StopKind::each_passenger`]); false for a depot.
    pub fn reads_queue(&self) -> bool {
        self.reads_queue
    }

    /// Builds the stop from its `settings` over the host's `ports`, offering it `extensions`.
    /// The shared settings are read first; any error names the variable or resource at fault.
    pub async fn build(
        &self,
        settings: Arc<dyn Vars>,
        ports: Ports,
        extensions: Extensions,
    ) -> Result<ReadyStop, InitError> {
        let config = StopConfig::from_vars(settings.as_ref())?;
        if self.reads_queue && ports.trips.is_some() && config.queue_url.is_none() {
            // The ledger names a stop's arrivals by its queue, as its upstream names what it sent.
            return Err(ConfigError::Missing {
                var: "QUEUE_URL".into(),
                hint: "; a stop that keeps the trip ledger must know its own queue".into(),
            }
            .into());
        }
        let runtime = StopRuntime {
            config: config.clone(),
            ports: ports.clone(),
        };
        let init = InitContext {
            kind: self.name.clone(),
            settings,
            config,
            ports,
            extensions,
        };
        Ok(match (self.factory)(init).await? {
            Built::Stop(stop) => ReadyStop::Bus(BatchProcessor::new(stop, runtime)),
            Built::Depot(depot) => ReadyStop::Depot(TripStarter::new(depot, runtime)),
        })
    }
}

/// The stop kinds a build knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, StopKind>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// This registry with `kind` added; a kind of the same name is replaced, so a user's kind
    /// can stand in for a built-in one.
    pub fn with(mut self, kind: StopKind) -> Self {
        self.add(kind);
        self
    }

    /// Adds `kind`, replacing a kind of the same name.
    pub fn add(&mut self, kind: StopKind) {
        self.kinds.insert(kind.name.clone(), kind);
    }

    /// The names of the kinds, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.kinds.keys().map(String::as_str).collect()
    }

    /// The kind named `name`; an error listing the known kinds when there is none.
    pub fn get(&self, name: &str) -> Result<&StopKind, InitError> {
        self.kinds.get(name).ok_or_else(|| InitError::UnknownKind {
            kind: name.to_owned(),
            known: self.names().join(", "),
        })
    }

    /// Builds a stop of kind `kind` (see [`StopKind::build`]).
    pub async fn build(
        &self,
        kind: &str,
        settings: Arc<dyn Vars>,
        ports: Ports,
        extensions: Extensions,
    ) -> Result<ReadyStop, InitError> {
        self.get(kind)?.build(settings, ports, extensions).await
    }
}
