//! The LEARNING plugin objects, for static registration by the plugin host.
//!
//! Every built-in learner is one [`BuiltinLearner`]: its metadata and the
//! function that builds it from a [`LearnerSpec`]. A front end (`evospike train`,
//! the train node kind, the training service) picks a learner by name through the
//! plugin registry, so a learner added here is selectable everywhere at once.

use evospike_plugin_api::{
    Learner, LearnerSpec, LearningPlugin, Plugin, PluginError, PluginMetadata, PluginType,
};

/// Builds a learner from a spec.
type Create = fn(&LearnerSpec) -> Result<Box<dyn Learner>, PluginError>;

/// A built-in LEARNING plugin: metadata and a constructor.
#[derive(Debug)]
pub struct BuiltinLearner {
    meta: PluginMetadata,
    create: Create,
}

impl BuiltinLearner {
    fn new(name: &str, description: &str, capability: &str, create: Create) -> Self {
        let version = evospike_plugin_api::crate_version!();
        Self {
            meta: PluginMetadata::new(name, version, PluginType::Learning)
                .with_description(description)
                .with_author("evospike")
                .with_capability("learner")
                .with_capability(capability),
            create,
        }
    }
}

impl Plugin for BuiltinLearner {
    fn metadata(&self) -> &PluginMetadata {
        &self.meta
    }

    fn as_learning(&self) -> Option<&dyn LearningPlugin> {
        Some(self)
    }
}

impl LearningPlugin for BuiltinLearner {
    fn create_learner(&self, spec: &LearnerSpec) -> Result<Box<dyn Learner>, PluginError> {
        (self.create)(spec)
    }
}

/// The `SurrogateGradient` LEARNING plugin.
pub fn surrogate_gradient_plugin() -> BuiltinLearner {
    BuiltinLearner::new(
        crate::surrogate::NAME,
        "Supervised BPTT of LIF networks with a surrogate spike derivative, Adam, cosine schedule",
        "supervised",
        |spec| Ok(Box::new(crate::surrogate::SurrogateGradient::new(spec)?)),
    )
}

/// The LEARNING plugins of this crate.
pub fn builtin_plugins() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(surrogate_gradient_plugin()),
        Box::new(BuiltinLearner::new(
            crate::distill::NAME,
            "Knowledge distillation: a trained model teaches a smaller SurrogateGradient student",
            "supervised",
            |spec| Ok(Box::new(crate::distill::Distillation::new(spec)?)),
        )),
        Box::new(BuiltinLearner::new(
            crate::ssl::NAME,
            "Self-supervised: NT-Xent on spike counts of two augmented views, then a linear probe",
            "self-supervised",
            |spec| Ok(Box::new(crate::ssl::Ssl::new(spec)?)),
        )),
        Box::new(BuiltinLearner::new(
            crate::unsupervised::NAME,
            "Diehl & Cook 2015: LIF layer with adaptive thresholds, lateral inhibition and STDP; neurons assigned to classes by their responses",
            "unsupervised",
            |spec| Ok(Box::new(crate::unsupervised::StdpUnsupervised::new(spec)?)),
        )),
    ]
}
