// A minimal stand-in for the browser objects static/js/canvas.js uses, enough to construct a
// ReviewCanvas under node, draw frames and watch its listeners (not a test file).

/** An EventTarget that remembers which listeners it has and counts the calls they get. */
export class Target extends EventTarget {
  constructor() {
    super();
    this.calls = 0;
    this.types = new Set();
    this._wrapped = new Map();
  }

  addEventListener(type, listener, options) {
    const wrapped = (event) => {
      this.calls++;
      return listener.call(this, event);
    };
    this._wrapped.set(listener, wrapped);
    this.types.add(type);
    super.addEventListener(type, wrapped, options);
  }

  removeEventListener(type, listener, options) {
    super.removeEventListener(type, this._wrapped.get(listener) ?? listener, options);
  }
}

class Element extends Target {
  constructor(tag) {
    super();
    this.tagName = tag.toUpperCase();
    this.style = {};
    this.dataset = {};
    this.children = [];
    this.attributes = {};
    this.parent = null;
  }

  setAttribute(name, value) {
    this.attributes[name] = value;
  }

  append(...nodes) {
    for (const node of nodes) {
      node.parent = this;
      this.children.push(node);
    }
  }

  remove() {
    if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this);
    this.parent = null;
  }

  getBoundingClientRect() {
    return { left: 0, top: 0, width: this.clientWidth ?? 0, height: this.clientHeight ?? 0 };
  }
}

/** A 2D context that records setTransform calls. */
class Context {
  constructor() {
    this.transforms = [];
  }

  setTransform(...m) {
    this.transforms.push(m);
  }

  clearRect() {}
  drawImage() {}
  setLineDash() {}
  stroke() {}
  strokeRect() {}
}

class Canvas extends Element {
  constructor() {
    super("canvas");
    this.width = 300;
    this.height = 150;
    this.context = new Context();
  }

  getContext() {
    return this.context;
  }

  setPointerCapture() {}
  focus() {}
}

/** Installs the fakes on globalThis; returns the handles a test drives. Call uninstall() after. */
export function installDom({ width = 800, height = 600, dpr = 1 } = {}) {
  const frames = new Map();
  let nextFrame = 1;
  const observers = [];
  const queries = [];
  const images = [];
  const win = new Target();
  win.devicePixelRatio = dpr;
  win.matchMedia = (query) => {
    const list = new Target();
    list.media = query;
    queries.push(list);
    return list;
  };
  win.Image = class extends Element {
    constructor() {
      super("img");
      images.push(this);
    }
  };
  const saved = {};
  const globals = {
    window: win,
    document: { createElement: (tag) => (tag === "canvas" ? new Canvas() : new Element(tag)) },
    HTMLElement: Element,
    ResizeObserver: class {
      constructor(callback) {
        this.callback = callback;
        this.observing = false;
        observers.push(this);
      }

      observe() {
        this.observing = true;
      }

      disconnect() {
        this.observing = false;
      }
    },
    requestAnimationFrame: (run) => {
      frames.set(nextFrame, run);
      return nextFrame++;
    },
    cancelAnimationFrame: (id) => frames.delete(id),
    CustomEvent: class extends Event {
      constructor(type, { detail = null, ...options } = {}) {
        super(type, options);
        this.detail = detail;
      }
    },
  };
  for (const [name, value] of Object.entries(globals)) {
    saved[name] = Object.getOwnPropertyDescriptor(globalThis, name);
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  const host = new Element("div");
  host.clientWidth = width;
  host.clientHeight = height;
  return {
    window: win,
    host,
    observers,
    queries,
    images,
    frames,
    /** Run the animation frames asked for. */
    flushFrames() {
      for (const [id, run] of [...frames]) {
        frames.delete(id);
        run();
      }
    },
    uninstall() {
      for (const [name, descriptor] of Object.entries(saved)) {
        if (descriptor) Object.defineProperty(globalThis, name, descriptor);
        else delete globalThis[name];
      }
    },
  };
}
