//! Catalog additions of stagesql: the `system` schema with the session's job history.

mod system;

pub use system::register_system_schema;
