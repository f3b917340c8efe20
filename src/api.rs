//! The generated gRPC and proto3-JSON types of `proto/firstreply/v1`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("firstreply.v1");
include!(concat!(env!("OUT_DIR"), "/firstreply.v1.serde.rs"));

/// Descriptor set for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("firstreply_descriptor");
