//! The console's terminal loop: raw mode and the alternate screen (restored on exit, on
//! error and on panic), an input thread, and drawing at a steady rate from the app's
//! state. While nothing runs the loop sleeps until input, a message, or the next
//! reading of a live view ([`App::poll`]); while jobs or probes run it ticks at
//! [`FRAME`] to show their progress.

use std::io::{Stdout, stdout};
use std::time::{Duration, Instant};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};

use crate::app::{App, Msg};
use crate::screens;

/// The frame interval while something runs (about 15 frames a second).
pub const FRAME: Duration = Duration::from_millis(66);

fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(
        stdout(),
        LeaveAlternateScreen,
        DisableMouseCapture,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped (normal exit and errors).
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// The console's loop on any backend, until the app quits: draws a frame when the state
/// changed, then sleeps until input or a message arrives; while jobs or probes run it
/// wakes at [`FRAME`] to sample their progress. `drawn` sees every frame once drawn
/// (the binary ignores it; benches and tests watch frames through it).
pub fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    drawn: &mut dyn FnMut(&Terminal<B>, &App),
) -> anyhow::Result<()>
where
    B::Error: Send + Sync + 'static,
{
    let mut last_tick = Instant::now();
    loop {
        if app.dirty {
            terminal.draw(|f| screens::draw(f, app))?;
            app.dirty = false;
            drawn(terminal, app);
        }
        if app.quit {
            return Ok(());
        }
        // Live views read their list again every few seconds.
        let poll = app.next_poll();
        let timeout = if app.busy() {
            FRAME.saturating_sub(last_tick.elapsed()).min(poll)
        } else {
            poll
        };
        app.wait(Some(timeout));
        app.poll();
        if app.busy() && last_tick.elapsed() >= FRAME {
            app.tick();
            app.dirty = true;
            last_tick = Instant::now();
        }
    }
}

/// Runs the console until the user quits.
pub fn run(mut app: App) -> anyhow::Result<()> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        tracing::error!("console panic: {info}");
        previous(info);
    }));
    enable_raw_mode()?;
    let _guard = Guard;
    execute!(stdout(), EnterAlternateScreen, EnableMouseCapture)?;
    let mut terminal: Terminal<CrosstermBackend<Stdout>> =
        Terminal::new(CrosstermBackend::new(stdout()))?;
    terminal.clear()?;
    let tx = app.sender();
    std::thread::Builder::new()
        .name("ferry-input".into())
        .spawn(move || {
            loop {
                match crossterm::event::read() {
                    Ok(ev) => {
                        if tx.send(Msg::Input(ev)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot read the terminal: {e}");
                        break;
                    }
                }
            }
        })?;
    run_loop(&mut terminal, &mut app, &mut |_, _| {})?;
    drop(_guard);
    // Jobs cancelled by quitting end their steps and record themselves as cancelled;
    // plans left unconfirmed are recorded as abandoned.
    let running = app.winding();
    if running > 0 {
        eprintln!("waiting for {running} cancelled job(s) and audit record(s)…");
        if !app.wind_down(WIND_DOWN) {
            eprintln!(
                "{} job(s) or record(s) were not done within {}s: their audit records may be missing",
                app.winding(),
                WIND_DOWN.as_secs()
            );
        }
    }
    let _ = std::panic::take_hook();
    Ok(())
}

/// How long quitting waits for cancelled jobs to stop.
const WIND_DOWN: Duration = Duration::from_secs(30);
