//! Our keys as DataFusion configuration extensions: the values of `spark.*` and `stagesql.*`
//! live in the session's `ConfigOptions` next to `datafusion.*`, so they travel wherever
//! DataFusion's configuration goes — into every task's `TaskContext`, and with a plan to
//! another process (the cluster needs that). One extension per namespace, since DataFusion
//! routes a key to the extension named by its first segment.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use datafusion::config::{ConfigEntry, ConfigExtension, ConfigOptions, ExtensionOptions};
use datafusion::error::{DataFusionError, Result};

use super::keys::{self, KeyDefinition};

/// The first segment of a family of our keys.
pub trait Namespace: Send + Sync + 'static {
    const PREFIX: &'static str;
}

/// `spark.*`: Spark's names for the concepts Spark has.
#[derive(Debug)]
pub struct Spark;

impl Namespace for Spark {
    const PREFIX: &'static str = "spark";
}

/// `stagesql.*`: our own.
#[derive(Debug)]
pub struct StageSql;

impl Namespace for StageSql {
    const PREFIX: &'static str = "stagesql";
}

/// The values of our keys under one namespace that differ from their defaults, validated
/// and in canonical form.
pub struct OwnOptions<N> {
    values: BTreeMap<&'static str, String>,
    namespace: PhantomData<N>,
}

impl<N> Default for OwnOptions<N> {
    fn default() -> Self {
        Self {
            values: BTreeMap::new(),
            namespace: PhantomData,
        }
    }
}

impl<N> Clone for OwnOptions<N> {
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            namespace: PhantomData,
        }
    }
}

impl<N: Namespace> fmt::Debug for OwnOptions<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnOptions")
            .field("prefix", &N::PREFIX)
            .field("values", &self.values)
            .finish()
    }
}

impl<N: Namespace> OwnOptions<N> {
    fn definitions() -> impl Iterator<Item = &'static KeyDefinition> {
        keys::DEFINITIONS
            .iter()
            .filter(|d| d.key.split_once('.').is_some_and(|(p, _)| p == N::PREFIX))
    }

    /// The current value of `key` (the whole key, prefix included).
    fn get(&self, key: &str) -> Option<&str> {
        let definition = keys::definition(key)?;
        Some(
            self.values
                .get(definition.key)
                .map_or(definition.default, String::as_str),
        )
    }
}

impl<N: Namespace> ConfigExtension for OwnOptions<N> {
    const PREFIX: &'static str = N::PREFIX;
}

impl<N: Namespace> ExtensionOptions for OwnOptions<N> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    /// `key` comes without the prefix, as DataFusion routes it.
    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let full = format!("{}.{key}", N::PREFIX);
        let definition = keys::definition(&full).ok_or_else(|| {
            DataFusionError::Configuration(format!("unknown configuration key '{full}'"))
        })?;
        let value = keys::validate(definition, value)
            .map_err(|e| DataFusionError::Configuration(e.to_string()))?;
        match value == definition.default {
            true => self.values.remove(definition.key),
            false => self.values.insert(definition.key, value),
        };
        Ok(())
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        Self::definitions()
            .map(|definition| ConfigEntry {
                key: definition.key.to_string(),
                value: self.get(definition.key).map(str::to_string),
                description: definition.description,
            })
            .collect()
    }
}

/// Registers our namespaces in `options` (values at their defaults).
pub fn register(options: &mut ConfigOptions) {
    options.extensions.insert(OwnOptions::<Spark>::default());
    options.extensions.insert(OwnOptions::<StageSql>::default());
}

/// The current value of one of our keys in `options`; the default when the namespaces are
/// not registered there.
pub fn get(options: &ConfigOptions, key: &str) -> String {
    let value = match key.split_once('.').map(|(prefix, _)| prefix) {
        Some(Spark::PREFIX) => options
            .extensions
            .get::<OwnOptions<Spark>>()
            .and_then(|o| o.get(key)),
        Some(StageSql::PREFIX) => options
            .extensions
            .get::<OwnOptions<StageSql>>()
            .and_then(|o| o.get(key)),
        _ => None,
    };
    value
        .or_else(|| keys::definition(key).map(|d| d.default))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_keys_are_set_and_listed_through_datafusion_options() {
        let mut options = ConfigOptions::default();
        register(&mut options);
        options.set(keys::SHUFFLE_PARTITIONS, " 8 ").unwrap();
        options.set(keys::EXECUTION_MODE, "Pipelined").unwrap();
        assert_eq!(get(&options, keys::SHUFFLE_PARTITIONS), "8");
        assert_eq!(get(&options, keys::EXECUTION_MODE), "pipelined");
        let err = options.set(keys::SHUFFLE_PARTITIONS, "0").unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
        assert_eq!(get(&options, keys::SHUFFLE_PARTITIONS), "8");

        // A copy (what a task or a serialized plan carries) has the same values.
        let copy = options.clone();
        assert_eq!(get(&copy, keys::SHUFFLE_PARTITIONS), "8");
        let entries = copy.entries();
        let partitions = entries
            .iter()
            .find(|e| e.key == keys::SHUFFLE_PARTITIONS)
            .unwrap();
        assert_eq!(partitions.value.as_deref(), Some("8"));
        assert!(entries.iter().any(|e| e.key == keys::TEST_FAULT_SEED));
    }

    #[test]
    fn unregistered_options_read_defaults() {
        let options = ConfigOptions::default();
        assert_eq!(get(&options, keys::SHUFFLE_PARTITIONS), "200");
    }
}
