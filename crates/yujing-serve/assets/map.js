// The risk map: Chongqing's 38 区县 drawn as SVG from chongqing.geojson, coloured by grade.
//
// Projection: equirectangular about the map's mean latitude, x scaled by cos(latitude),
// which at Chongqing's size (about 5° by 4°) is indistinguishable from a conformal one.

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 1000;

/** Every grade the map colours, plus `none` for a district without data. */
export const GRADE_ORDER = ['normal', 'blue', 'yellow', 'orange', 'red'];

function project(features) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity, latSum = 0, n = 0;
  for (const f of features) {
    for (const poly of f.geometry.coordinates) {
      for (const [x, y] of poly[0]) {
        latSum += y;
        n += 1;
      }
    }
  }
  const k = Math.cos(((latSum / n) * Math.PI) / 180);
  for (const f of features) {
    for (const poly of f.geometry.coordinates) {
      for (const ring of poly) {
        for (const [x, y] of ring) {
          minX = Math.min(minX, x * k);
          maxX = Math.max(maxX, x * k);
          minY = Math.min(minY, y);
          maxY = Math.max(maxY, y);
        }
      }
    }
  }
  const pad = 8;
  const s = (WIDTH - 2 * pad) / (maxX - minX);
  const height = Math.ceil((maxY - minY) * s + 2 * pad);
  const fn = ([x, y]) => [pad + (x * k - minX) * s, pad + (maxY - y) * s];
  return { fn, height };
}

/** The colour of a grade, from the CSS variables `--g-<grade>` (one source of truth). */
export function gradeColour(grade) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(`--g-${grade}`).trim();
  return v || '#e3e3e3';
}

function ringArea(pts) {
  let a = 0;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) a += pts[j][0] * pts[i][1] - pts[i][0] * pts[j][1];
  return a / 2;
}

function centroid(pts) {
  // Centroid of a polygon ring (in projected coordinates).
  let cx = 0, cy = 0, a = 0;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const f = pts[j][0] * pts[i][1] - pts[i][0] * pts[j][1];
    cx += (pts[j][0] + pts[i][0]) * f;
    cy += (pts[j][1] + pts[i][1]) * f;
    a += f;
  }
  return a === 0 ? pts[0] : [cx / (3 * a), cy / (3 * a)];
}

// Districts whose label would not fit; the name shows on hover instead.
const LABEL_MIN_AREA = 900;
// Hand-placed label nudges, in map units, where the centroid sits badly.
const LABEL_NUDGE = { 500103: [0, 0] };

/**
 * Draws the map into `container`.
 * `onSelect(code)` is called when a district is clicked or chosen with the keyboard.
 * Returns { paths: Map(code -> SVGPathElement), features, colour(gradeByCode, region, regionOf), select(code) }.
 */
export function drawMap(container, geojson, onSelect) {
  const { fn, height } = project(geojson.features);
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${height}`);
  svg.setAttribute('id', 'map-svg');
  svg.setAttribute('role', 'group');
  svg.setAttribute('aria-label', '重庆市38个区县 Chongqing’s 38 districts');
  const gPaths = document.createElementNS(SVG, 'g');
  const gLabels = document.createElementNS(SVG, 'g');
  gLabels.setAttribute('class', 'labels');
  svg.append(gPaths, gLabels);
  const paths = new Map();
  for (const f of geojson.features) {
    const { code, name, name_en: nameEn } = f.properties;
    let d = '';
    let best = null;
    let bestArea = 0;
    for (const poly of f.geometry.coordinates) {
      poly.forEach((ring, i) => {
        const pts = ring.map(fn);
        d += 'M' + pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join('L') + 'Z';
        const a = Math.abs(ringArea(pts));
        if (i === 0 && a > bestArea) {
          bestArea = a;
          best = pts;
        }
      });
    }
    const p = document.createElementNS(SVG, 'path');
    p.setAttribute('d', d);
    p.setAttribute('class', 'district');
    p.setAttribute('fill-rule', 'evenodd');
    p.setAttribute('data-code', code);
    p.setAttribute('data-grade', 'none');
    p.setAttribute('tabindex', '0');
    p.setAttribute('role', 'button');
    p.setAttribute('aria-label', `${name} ${nameEn}`);
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${name} ${nameEn}`;
    p.append(title);
    p.addEventListener('click', () => onSelect(code));
    p.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        onSelect(code);
      }
    });
    gPaths.append(p);
    paths.set(code, p);
    if (best && bestArea >= LABEL_MIN_AREA) {
      const [cx, cy] = centroid(best);
      const [dx, dy] = LABEL_NUDGE[code] || [0, 0];
      const t = document.createElementNS(SVG, 'text');
      t.setAttribute('x', (cx + dx).toFixed(1));
      t.setAttribute('y', (cy + dy).toFixed(1));
      t.setAttribute('text-anchor', 'middle');
      t.setAttribute('dominant-baseline', 'middle');
      t.textContent = name.replace(/(区|县|自治县)$/, '').replace(/土家族苗族$|土家族$|苗族土家族$/, '');
      gLabels.append(t);
    }
  }
  container.replaceChildren(svg);

  return {
    paths,
    features: geojson.features,
    /**
     * Colours every district: `info` maps code -> {grade, score, label}; codes missing get
     * grade `none`. `inRegion(code)` false dims a district.
     */
    colour(info, inRegion) {
      for (const [code, p] of paths) {
        const it = info.get(code);
        const grade = it && it.grade ? it.grade : 'none';
        p.setAttribute('data-grade', grade);
        p.setAttribute('fill', gradeColour(grade));
        p.classList.toggle('dim', inRegion ? !inRegion(code) : false);
        const t = p.querySelector('title');
        const f = geojson.features.find((x) => x.properties.code === code);
        const base = `${f.properties.name} ${f.properties.name_en}`;
        t.textContent = it && it.label ? `${base} · ${it.label}` : base;
      }
    },
    /**
     * Zooms to the districts `inRegion` accepts (all when it is null), keeping labels at
     * the same size on screen.
     */
    zoom(inRegion) {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const [code, p] of paths) {
        if (inRegion && !inRegion(code)) continue;
        const b = p.getBBox();
        x0 = Math.min(x0, b.x);
        y0 = Math.min(y0, b.y);
        x1 = Math.max(x1, b.x + b.width);
        y1 = Math.max(y1, b.y + b.height);
      }
      if (!inRegion || !Number.isFinite(x0)) {
        svg.setAttribute('viewBox', `0 0 ${WIDTH} ${height}`);
        svg.style.setProperty('--zoom', '1');
        return;
      }
      // Keep the map's aspect ratio so the panel does not jump.
      const pad = 12;
      let w = x1 - x0 + 2 * pad, h = y1 - y0 + 2 * pad;
      const aspect = WIDTH / height;
      if (w / h < aspect) w = h * aspect;
      else h = w / aspect;
      const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
      svg.setAttribute('viewBox', `${(cx - w / 2).toFixed(1)} ${(cy - h / 2).toFixed(1)} ${w.toFixed(1)} ${h.toFixed(1)}`);
      svg.style.setProperty('--zoom', String(WIDTH / w));
    },
    /** Marks the selected district. */
    select(code) {
      for (const [c, p] of paths) p.classList.toggle('selected', c === code);
      const p = paths.get(code);
      if (p) p.parentNode.append(p); // draw its outline on top
    },
  };
}

/** Builds the legend (grade swatches). */
export function legendHtml(GRADES, bi, L) {
  const items = GRADE_ORDER.map(
    (g) => `<li><span class="swatch g-${g}"></span>${bi(GRADES[g])}</li>`,
  );
  items.push(`<li><span class="swatch g-none"></span>${bi(L.noData)}</li>`);
  return `<ul class="legend">${items.join('')}</ul>`;
}
