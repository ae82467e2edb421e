//! Host bindings for the `agh:grader` worlds agh serves, generated once per
//! contract version.
//!
//! Imports are async (they wait on Docker) and trappable: a host function
//! returns `wasmtime::Result<T>`, where an `Err` traps the grader (a policy
//! violation, an infra failure) and the WIT `result` inside is an error the
//! grader can handle.
//!
//! The newest contract is implemented directly; older ones are served by
//! converting to and from it (`compat_0_1`, `compat_0_2`).

/// `agh:grader@0.3.0`, the contract new graders target.
pub mod current {
    wasmtime::component::bindgen!({
        path: "../wit/0.3.0",
        world: "grader-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use self::agh::grader::types;
}

/// `agh:grader@0.2.0`, frozen.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "grader-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use self::agh::grader::types;
}

/// `agh:grader@0.1.0`, frozen.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "grader-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });

    pub use self::agh::grader::types;
}

pub use current::{GraderPlugin, GraderPluginPre, types};
