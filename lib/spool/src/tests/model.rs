//! Model test: random appends, acks, reads, syncs and crash-reopens against an in-memory model.
