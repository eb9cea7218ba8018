/* Small DOM helpers shared by Orket's pages. Text always goes in with textContent, never as HTML. */

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  return node;
}

export function cookie(name) {
  const parts = document.cookie ? document.cookie.split(";") : [];
  for (let i = 0; i < parts.length; i++) {
    const item = parts[i].trim();
    if (item.indexOf(name + "=") === 0) {
      return decodeURIComponent(item.slice(name.length + 1));
    }
  }
  return "";
}
