import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The Tauri window loads http://localhost:1420 in development (tauri.conf.json `devUrl`) and
// the files in ui/dist when built.
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 1420, strictPort: true, host: 'localhost' },
  build: { target: 'es2022', sourcemap: false, outDir: 'dist', emptyOutDir: true },
});
