//! Host bindings for the `agh:grader` world, generated once.
//!
//! Imports are async (they wait on Docker) and trappable: a host function
//! returns `wasmtime::Result<T>`, where an `Err` traps the grader (a policy
//! violation, an infra failure) and the WIT `result` inside is an error the
//! grader can handle.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "grader-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::agh::grader::types;
