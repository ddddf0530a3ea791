//! The Tessera desktop app. Everything lives in the library so tests can build the app with
//! Tauri's mock runtime.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tessera_desktop::run();
}
