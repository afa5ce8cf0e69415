<?php

// examples/laravel/app/Livewire/OperationRunDetail.php — the run detail component whose view
// (resources/views/livewire/operation-run-detail.blade.php) used to carry wire:poll.10s. Only the token is
// new; the component renders exactly what it rendered before. $refresh (called by the Alpine glue) re-runs
// render(), which reloads the model.

namespace App\Livewire;

use App\Models\OperationRun;
use App\Support\PollgateToken;
use Livewire\Component;

final class OperationRunDetail extends Component
{
    public OperationRun $run;

    public function render()
    {
        $this->run->refresh();

        return view('livewire.operation-run-detail', [
            // header mode only: cookie mode needs no token in the page.
            'pollgateToken' => config('pollgate.credential') === 'header'
                ? PollgateToken::mint((int) auth()->id())
                : null,
        ]);
    }
}
