//! The LEARNING plugin objects, for static registration by the plugin host.

use evospike_plugin_api::{
    Learner, LearnerSpec, LearningPlugin, Plugin, PluginError, PluginMetadata, PluginType,
};

use crate::surrogate::{SurrogateGradient, NAME};

/// The `SurrogateGradient` LEARNING plugin.
#[derive(Debug)]
pub struct SurrogateGradientPlugin {
    meta: PluginMetadata,
}

impl Default for SurrogateGradientPlugin {
    fn default() -> Self {
        let version = evospike_plugin_api::crate_version!();
        Self {
            meta: PluginMetadata::new(NAME, version, PluginType::Learning)
                .with_description(
                    "Supervised BPTT of LIF networks with a surrogate spike derivative, Adam, cosine schedule",
                )
                .with_author("evospike")
                .with_capability("learner")
                .with_capability("supervised"),
        }
    }
}

impl Plugin for SurrogateGradientPlugin {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn as_learning(&self) -> Option<&dyn LearningPlugin> {
        Some(self)
    }
}

impl LearningPlugin for SurrogateGradientPlugin {
    fn create_learner(&self, spec: &LearnerSpec) -> Result<Box<dyn Learner>, PluginError> {
        Ok(Box::new(SurrogateGradient::new(spec)?))
    }
}

/// The LEARNING plugins of this crate.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![Box::new(SurrogateGradientPlugin::default())]
}
