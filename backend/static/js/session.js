// The API key lives in sessionStorage: this tab only, gone when the tab closes, and never put
// in a URL (URLs end up in logs and history). Every request sends it as a Bearer header.
const STORAGE_KEY = "untxt.apiKey";

export function getKey() {
  return sessionStorage.getItem(STORAGE_KEY);
}

export function setKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}
