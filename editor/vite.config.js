// Builds one ES module and one stylesheet with fixed names into the Rust UI's asset folder, where
// `include_str!` embeds them in the binary. No HTML entry: the server renders the page.
import { defineConfig } from 'vite';

export default defineConfig({
  esbuild: { jsx: 'automatic' },
  define: { 'process.env.NODE_ENV': '"production"' },
  build: {
    outDir: '../src/lib/http/ui/editor',
    emptyOutDir: false,
    target: 'es2020',
    cssCodeSplit: false,
    modulePreload: false,
    minify: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      input: 'src/main.jsx',
      preserveEntrySignatures: false,
      output: {
        format: 'es',
        inlineDynamicImports: true,
        entryFileNames: 'editor.js',
        assetFileNames: (info) => (info.names && info.names[0] && info.names[0].endsWith('.css') ? 'editor.css' : '[name][extname]'),
      },
    },
  },
});
