//! [`export_plugin!`](crate::export_plugin): turn a plugin crate into a loadable `cdylib`.

/// Export a plugin type from a `cdylib` crate through the evospike C ABI.
///
/// ```
/// use evospike_plugin_api::{abi, Plugin, PluginMetadata, PluginType};
///
/// #[derive(Debug)]
/// struct MyFilter(PluginMetadata);
/// impl Plugin for MyFilter {
///     fn metadata(&self) -> &PluginMetadata { &self.0 }
/// }
///
/// evospike_plugin_api::export_plugin!(functional: MyFilter => MyFilter(PluginMetadata::new(
///     "MyFilter",
///     evospike_plugin_api::semver::Version::new(1, 0, 0),
///     PluginType::Functional,
/// )));
///
/// // What the host does first after opening the library:
/// // SAFETY: the entry function returns a pointer to a static header.
/// let header = unsafe { &*evospike_plugin_entry_v1() };
/// assert_eq!(header.magic, abi::MAGIC);
/// assert_eq!(PluginType::from_code(header.plugin_type), Some(PluginType::Functional));
/// ```
///
/// For a NEURON plugin: `export_plugin!(neuron: MyNeuron => MyNeuron::new());`
///
/// The first word is the plugin type (`neuron`, `encoder`, `plasticity`, `functional`,
/// `learning`, `monitoring`, `communication`), then the plugin's Rust type (which
/// implements [`Plugin`](crate::Plugin), and [`NeuronPlugin`](crate::NeuronPlugin) for
/// `neuron`) and an expression that constructs it.
///
/// The macro emits the one entry symbol [`abi::ENTRY_SYMBOL`](crate::abi::ENTRY_SYMBOL),
/// a static [`PluginHeader`](crate::abi::PluginHeader) carrying this build's ABI,
/// API and rustc versions, and `extern "C"` shims that catch panics. Use it once per
/// crate. Across the ABI, the NEURON family is available (`create_layer` and the
/// layer's per-step call); plugins of other types offer the lifecycle and `execute`.
#[macro_export]
macro_rules! export_plugin {
    (neuron: $ty:ty => $ctor:expr) => {
        #[doc(hidden)]
        static __EVOSPIKE_NEURON_VTABLE: $crate::abi::NeuronVTable =
            $crate::abi::guest::neuron_vtable::<$ty>();
        $crate::export_plugin!(@emit Neuron, $ty, $ctor, &__EVOSPIKE_NEURON_VTABLE);
    };
    (encoder: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Encoder, $ty, $ctor, ::core::ptr::null());
    };
    (plasticity: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Plasticity, $ty, $ctor, ::core::ptr::null());
    };
    (functional: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Functional, $ty, $ctor, ::core::ptr::null());
    };
    (learning: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Learning, $ty, $ctor, ::core::ptr::null());
    };
    (monitoring: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Monitoring, $ty, $ctor, ::core::ptr::null());
    };
    (communication: $ty:ty => $ctor:expr) => {
        $crate::export_plugin!(@emit Communication, $ty, $ctor, ::core::ptr::null());
    };
    (@emit $kind:ident, $ty:ty, $ctor:expr, $neuron:expr) => {
        #[doc(hidden)]
        unsafe extern "C" fn __evospike_create(
            out: *mut $crate::abi::Instance,
            err: *mut $crate::abi::RawBuf,
        ) -> i32 {
            // SAFETY: the host passes valid out-pointers, as `guest::create` requires.
            unsafe { $crate::abi::guest::create::<$ty>(|| $ctor, out, err) }
        }

        #[doc(hidden)]
        static __EVOSPIKE_VTABLE: $crate::abi::PluginVTable =
            $crate::abi::guest::plugin_vtable::<$ty>(__evospike_create, $neuron);

        #[doc(hidden)]
        static __EVOSPIKE_HEADER: $crate::abi::PluginHeader =
            $crate::abi::guest::header($crate::PluginType::$kind, &__EVOSPIKE_VTABLE);

        /// The plugin's entry symbol: returns its static ABI header.
        #[unsafe(no_mangle)]
        pub extern "C" fn evospike_plugin_entry_v1() -> *const $crate::abi::PluginHeader {
            &__EVOSPIKE_HEADER
        }
    };
}
