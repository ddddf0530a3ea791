//! Secrets leave no copy in freed memory. A global allocator looks into every block freed
//! while a test watches and counts those that still hold a marker secret.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tessera_core::SecretString;
use tessera_core::vault::{MemoryStore, TokenSet, Vault};

const MARKER: &str = "tessera-secret-marker-7f3a9c";

struct Watching;

static WATCH: AtomicBool = AtomicBool::new(false);
static FREED_WITH_MARKER: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; `dealloc` only reads
// the block it is handed before freeing it.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCH.load(Ordering::SeqCst) {
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()) {
                FREED_WITH_MARKER.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// How many blocks freed during `f` still held the marker.
fn freed_with_marker(f: impl FnOnce()) -> usize {
    FREED_WITH_MARKER.store(0, Ordering::SeqCst);
    WATCH.store(true, Ordering::SeqCst);
    f();
    WATCH.store(false, Ordering::SeqCst);
    FREED_WITH_MARKER.load(Ordering::SeqCst)
}

fn token_set() -> TokenSet {
    TokenSet {
        access_token: SecretString::new(MARKER),
        token_type: "Bearer".into(),
        expires_at: Some(100),
        refresh_token: Some(SecretString::new(MARKER)),
        id_token: Some(SecretString::new(MARKER)),
        scope: Some("openid".into()),
        nonce: None,
        id_token_matches_access_token: true,
        obtained_at: 40,
    }
}

// One test in this binary: the allocator's counter is global.
#[test]
fn dropped_secrets_leave_nothing_in_freed_memory() {
    assert_eq!(
        freed_with_marker(|| drop(MARKER.to_string())),
        1,
        "the watch sees a plain string's text"
    );
    assert_eq!(freed_with_marker(|| drop(SecretString::new(MARKER))), 0);
    assert_eq!(
        freed_with_marker(|| {
            let copy = SecretString::new(MARKER);
            drop(copy.clone());
        }),
        0
    );
    assert_eq!(
        freed_with_marker(|| {
            let store = MemoryStore::default();
            let vault = Vault::new(Arc::new(store), "ns");
            vault.save_tokens("acc", &token_set()).unwrap();
            let back = vault.load_tokens("acc").unwrap().unwrap();
            assert_eq!(back.access_token.expose_secret(), MARKER);
            vault.delete_tokens("acc").unwrap();
        }),
        0,
        "saving, loading and deleting a token set copies no secret unwiped"
    );
}
