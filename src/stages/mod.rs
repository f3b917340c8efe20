//! The pipeline's stages, in the order data flows through them.

pub mod compose;
pub mod decide;
pub mod head;
pub mod intent;
pub mod knowledge;
pub mod language;
pub mod money;
pub mod normalize;
pub mod risk;
pub mod sentiment;
pub mod sla;
