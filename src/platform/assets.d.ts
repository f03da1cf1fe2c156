// The browser bundle's inlined text assets (scripts/build.mjs makes this module): path from the
// package root -> file text.
declare module 'incept:assets' {
  const assets: Record<string, string>;
  export default assets;
}
