//! Keys and the mouse: a key goes to what is open (a question, the wizard, the restore
//! prompt, the YAML view, the filter or `:` line) or to the keymap's command, which
//! runs here (moving, the global commands) or on the current screen's page.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Position;

use crate::app::{App, Load, Mode, Tone, View};
use crate::keymap::Command;
use crate::page;

impl App {
    /// A terminal event.
    pub fn input(&mut self, ev: crossterm::event::Event) {
        match ev {
            crossterm::event::Event::Key(k) if k.kind == crossterm::event::KeyEventKind::Press => {
                self.key(k)
            }
            crossterm::event::Event::Mouse(m) => self.mouse(m),
            crossterm::event::Event::Resize(..) => self.dirty = true,
            _ => {}
        }
    }

    fn mouse(&mut self, m: MouseEvent) {
        self.dirty = true;
        if let MouseEventKind::Down(MouseButton::Left) = m.kind {
            self.click(Position::new(m.column, m.row));
            return;
        }
        if self.wizard.is_some() || self.prompt.is_some() {
            return;
        }
        if let Some(v) = &mut self.viewer {
            let code = match m.kind {
                MouseEventKind::ScrollDown => KeyCode::Down,
                MouseEventKind::ScrollUp => KeyCode::Up,
                _ => return,
            };
            for _ in 0..3 {
                v.key(KeyEvent::new(code, KeyModifiers::NONE));
            }
            return;
        }
        match m.kind {
            MouseEventKind::ScrollDown => self.move_selection(3),
            MouseEventKind::ScrollUp => self.move_selection(-3),
            _ => return,
        }
        self.refresh_yaml();
    }

    /// A left click at `at`: on a wizard item selects it; on a breadcrumb goes back to
    /// that level; on a row selects it, or opens it (as enter does) when it already is.
    fn click(&mut self, at: Position) {
        if matches!(self.mode, Mode::ConfirmQuit | Mode::Help | Mode::Command(_))
            || self.prompt.is_some()
            || self.viewer.is_some()
        {
            return;
        }
        if let Mode::Pick(p) = &mut self.mode {
            let hit = crate::app::hit(&self.hits.borrow().pick, at);
            if let Some((i, item)) = hit.and_then(|i| Some((i, p.items.get_mut(i)?))) {
                p.cursor = i;
                item.ticked = !item.ticked;
            }
            return;
        }
        if let Some(w) = &mut self.wizard {
            if let Some(i) = crate::app::hit(&self.hits.borrow().wizard, at) {
                w.select(i);
            }
            return;
        }
        let crumb = crate::app::hit(&self.hits.borrow().crumbs, at);
        if let Some(level) = crumb {
            if level + 1 < self.stack.len() {
                self.stack.truncate(level + 1);
                self.show_yaml = false;
                self.yaml = None;
                self.yaml_scroll = 0;
            }
            return;
        }
        let list = &self.screen().list;
        let area = list.area.get();
        if !area.contains(at) {
            return;
        }
        let index = list.offset.get() + usize::from(at.y - area.y);
        let Load::Ready(rows) = self.rows(&self.screen().view) else {
            return;
        };
        let vis = App::visible(&rows, &list.filter);
        let selectable = vis
            .get(index)
            .and_then(|i| rows.get(*i))
            .is_some_and(|r| !r.group);
        if !selectable {
            return;
        }
        if index == list.selected {
            if page::offer(&self.screen().view, Command::Enter).is_some() {
                self.action(Command::Enter);
            }
        } else {
            self.screen_mut().list.selected = index;
        }
        self.refresh_yaml();
    }

    /// One key press; then the shown list follows its cluster (another view follows
    /// something else).
    pub fn key(&mut self, k: KeyEvent) {
        self.pressed(k);
        self.follow_shown();
    }

    fn pressed(&mut self, k: KeyEvent) {
        self.dirty = true;
        // A question is answered first, whatever is open under it.
        if let Mode::Confirm(ask) = &self.mode {
            let (then, otherwise) = (ask.then.clone(), ask.otherwise.clone());
            self.mode = Mode::Normal;
            if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                self.carry_out(then);
            } else if let Some(otherwise) = otherwise {
                self.carry_out(otherwise);
            } else {
                self.say(Tone::Normal, "not done: nothing changed");
            }
            return;
        }
        if matches!(self.mode, Mode::Pick(_)) {
            self.pick_key(k);
            return;
        }
        if self.wizard.is_some() {
            self.wizard_key(k);
            return;
        }
        if self.prompt.is_some() {
            self.prompt_key(k);
            return;
        }
        if let Some(v) = &mut self.viewer {
            if !v.key(k) {
                self.viewer = None;
            }
            return;
        }
        match self.mode.clone() {
            Mode::Filter => self.filter_key(k),
            Mode::Command(text) => self.command_key(k, text),
            Mode::ConfirmQuit => {
                if matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                    for j in self.jobs.iter().filter(|j| j.running()) {
                        j.progress.cancel();
                    }
                    self.quit_now();
                } else {
                    self.mode = Mode::Normal;
                    self.say(Tone::Normal, "still here: the jobs go on");
                }
            }
            // Answered above.
            Mode::Confirm(_) | Mode::Pick(_) => {}
            Mode::Help => self.mode = Mode::Normal,
            Mode::Normal => match (self.env.keymap.action(&k), k.code) {
                (Some(a), _) => self.action(a),
                // Shift + a letter no key has: sort by the column starting with it.
                (None, KeyCode::Char(c)) if c.is_ascii_uppercase() => self.sort_by_letter(c),
                _ => {}
            },
        }
        self.refresh_yaml();
    }

    fn filter_key(&mut self, k: KeyEvent) {
        match k.code {
            KeyCode::Enter => self.mode = Mode::Normal,
            KeyCode::Esc => {
                self.screen_mut().list.filter.clear();
                self.mode = Mode::Normal;
            }
            KeyCode::Backspace => {
                self.screen_mut().list.filter.pop();
            }
            KeyCode::Up => self.move_selection(-1),
            KeyCode::Down => self.move_selection(1),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.screen_mut().list.filter.push(c);
                self.screen_mut().list.selected = 0;
                self.select_first_selectable();
            }
            _ => {}
        }
    }

    /// Carries out a command of the keymap: moving and the global commands here, the
    /// rest by the current screen's page when it offers the command (else the status
    /// line says where the command works).
    pub fn action(&mut self, a: Command) {
        let view = self.screen().view.clone();
        match a {
            Command::Down => self.move_selection(1),
            Command::Up => self.move_selection(-1),
            Command::PageDown if self.show_yaml && self.yaml.is_some() => {
                // Never past the last line.
                let lines = self.yaml.as_ref().map_or(0, |(_, t)| t.lines().count());
                let last = u16::try_from(lines.saturating_sub(1)).unwrap_or(u16::MAX);
                self.yaml_scroll = self.yaml_scroll.saturating_add(10).min(last)
            }
            Command::PageUp if self.show_yaml && self.yaml.is_some() => {
                self.yaml_scroll = self.yaml_scroll.saturating_sub(10)
            }
            Command::PageDown => {
                let p = self.screen().list.page.get().max(1) as isize;
                self.move_selection(p)
            }
            Command::PageUp => {
                let p = self.screen().list.page.get().max(1) as isize;
                self.move_selection(-p)
            }
            Command::Top => {
                self.screen_mut().list.selected = 0;
                self.select_first_selectable();
            }
            Command::Bottom => self.move_selection(isize::MAX / 2),
            Command::Back => self.back(),
            Command::Filter => self.mode = Mode::Filter,
            Command::CommandLine => self.mode = Mode::Command(String::new()),
            Command::Help => self.mode = Mode::Help,
            Command::Quit => {
                if self.running_jobs() > 0 {
                    self.mode = Mode::ConfirmQuit;
                } else {
                    self.quit_now();
                }
            }
            Command::Refresh => self.load_current(true),
            Command::SortNext => {
                let columns = page::of(&view).columns().0.len().max(1);
                let next = self.sorting().map_or(0, |s| (s.column + 1) % columns);
                self.sort_by(next);
            }
            Command::Jobs => self.reset_to(vec![View::Jobs]),
            Command::Snapshots => self.reset_to(vec![View::Snapshots]),
            _ if page::offer(&view, a).is_some() => page::of(&view).run(self, &view, a),
            _ => {
                let key = self.env.keymap.keys_for(a).into_iter().next();
                let text = page::elsewhere(&view, a, key.as_deref().unwrap_or("that key"));
                self.say(Tone::Normal, text);
            }
        }
    }

    fn back(&mut self) {
        if !self.screen().list.filter.is_empty() {
            self.screen_mut().list.filter.clear();
            return;
        }
        if self.show_yaml {
            self.show_yaml = false;
            return;
        }
        if self.stack.len() > 1 {
            self.stack.pop();
            self.status = None;
            self.yaml = None;
        } else if self.screen().view != View::Clusters {
            self.reset_to(vec![View::Clusters]);
        }
    }
}
